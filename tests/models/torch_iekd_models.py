"""PyTorch renderings of the released IE-KD code's networks, for the import tests.

Written from ``model/resnet.py``, ``model/wide_resnet.py`` and ``model/mobilenet.py`` of
aliyun/Revisiting-Knowledge-Distillation-an-Inheritance-and-Exploration-Framework: the same
modules under the same attribute names (so the same ``state_dict`` keys) and the same forward
pass, returning ``(logits, features)``. Initialisation is left to the tests, which randomise
every tensor (:func:`randomize`).
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class _ZeroPadShortcut(nn.Module):
    """Option A: every second pixel, then planes // 4 zero channels on each side."""

    def __init__(self, planes):
        super().__init__()
        self.pad = planes // 4

    def forward(self, x):
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))


class ResidualBlock(nn.Module):
    def __init__(self, in_planes, planes, stride, option):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        if stride == 1 and in_planes == planes:
            self.shortcut = nn.Sequential()
        elif option == "A":
            self.shortcut = _ZeroPadShortcut(planes)
        else:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """``ResNet`` of model/resnet.py: ``depth`` = 6 n + 2, option ``"A"`` or ``"B"``."""

    def __init__(self, depth, num_classes, option):
        super().__init__()
        count = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        in_planes = 16
        for stage, (planes, stride) in enumerate(((16, 1), (32, 2), (64, 2)), 1):
            blocks = []
            for index in range(count):
                blocks.append(ResidualBlock(in_planes, planes, stride if index == 0 else 1, option))
                in_planes = planes
            setattr(self, f"layer{stage}", nn.Sequential(*blocks))
        self.linear = nn.Linear(64, num_classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        features = self.layer3(self.layer2(self.layer1(out)))
        pooled = F.avg_pool2d(features, features.size(3)).flatten(1)
        return self.linear(pooled), features


class WideBlock(nn.Module):
    def __init__(self, in_planes, planes, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.equal_in_out = in_planes == planes
        self.convShortcut = (
            None
            if self.equal_in_out
            else nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)
        )

    def forward(self, x):
        activated = self.relu1(self.bn1(x))
        out = self.conv2(self.relu2(self.bn2(self.conv1(activated))))
        residual = x if self.equal_in_out else self.convShortcut(activated)
        return residual + out


class WideGroup(nn.Module):
    def __init__(self, count, in_planes, planes, stride):
        super().__init__()
        self.layer = nn.Sequential(
            *(
                WideBlock(in_planes if index == 0 else planes, planes, stride if index == 0 else 1)
                for index in range(count)
            )
        )

    def forward(self, x):
        return self.layer(x)


class WideResNet(nn.Module):
    """``WideResNet`` of model/wide_resnet.py (without dropout: the tests run eval mode)."""

    def __init__(self, depth, width, num_classes):
        super().__init__()
        count = (depth - 4) // 6
        widths = (16 * width, 32 * width, 64 * width)
        self.conv1 = nn.Conv2d(3, 16, 3, stride=1, padding=1, bias=False)
        self.block1 = WideGroup(count, 16, widths[0], 1)
        self.block2 = WideGroup(count, widths[0], widths[1], 2)
        self.block3 = WideGroup(count, widths[1], widths[2], 2)
        self.bn1 = nn.BatchNorm2d(widths[2])
        self.relu = nn.ReLU()
        self.fc = nn.Linear(widths[2], num_classes)

    def forward(self, x):
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        features = self.relu(self.bn1(out))
        pooled = F.avg_pool2d(features, 8).flatten(1)
        return self.fc(pooled), features


class SeparableBlock(nn.Module):
    def __init__(self, in_planes, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(
            in_planes, in_planes, 3, stride=stride, padding=1, groups=in_planes, bias=False
        )
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv2 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)

    def forward(self, x):
        return F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))


# (channels, stride) of model/mobilenet.py's 13 blocks.
MOBILENET_PLAN = (
    (64, 1),
    (128, 1),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    *((512, 1),) * 5,
    (1024, 1),
    (1024, 1),
)


class MobileNet(nn.Module):
    """``mobilenet`` of model/mobilenet.py (width multiplier 1)."""

    def __init__(self, num_classes):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        blocks, in_planes = [], 32
        for planes, stride in MOBILENET_PLAN:
            blocks.append(SeparableBlock(in_planes, planes, stride))
            in_planes = planes
        self.layers = nn.Sequential(*blocks)
        self.linear = nn.Linear(1024, num_classes)

    def forward(self, x):
        features = self.layers(F.relu(self.bn1(self.conv1(x))))
        pooled = F.avg_pool2d(features, features.size(2)).flatten(1)
        return self.linear(pooled), features


def build(arch, num_classes):
    """The rendering of an ``iekd`` zoo arch name (``resnet8``, ``resnet20b``, ``wrn_16_2``,
    ``mobilenet``)."""
    if arch == "mobilenet":
        return MobileNet(num_classes)
    if arch.startswith("wrn_"):
        depth, width = (int(part) for part in arch.split("_")[1:])
        return WideResNet(depth, width, num_classes)
    option = "B" if arch.endswith("b") else "A"
    return CifarResNet(int(arch.removeprefix("resnet").removesuffix("b")), num_classes, option)


def randomize(module, seed=0):
    """Every weight and batch-norm statistic drawn at random, at scales that keep deep
    activations of order one; returns the module in eval mode."""
    generator = torch.Generator().manual_seed(seed)

    def uniform(tensor, low, high):
        tensor.copy_(low + (high - low) * torch.rand(tensor.shape, generator=generator))

    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, nn.Conv2d | nn.Linear):
                fan_in = layer.weight[0].numel()
                layer.weight.copy_(
                    torch.randn(layer.weight.shape, generator=generator) * (2.0 / fan_in) ** 0.5
                )
                if layer.bias is not None:
                    uniform(layer.bias, -0.1, 0.1)
            elif isinstance(layer, nn.BatchNorm2d):
                uniform(layer.weight, 0.5, 1.5)
                uniform(layer.bias, -0.2, 0.2)
                uniform(layer.running_mean, -0.2, 0.2)
                uniform(layer.running_var, 0.5, 2.0)
    return module.eval()


def torch_outputs(module, images):
    """``[logits, features]`` of a rendering for channels-last numpy ``images``, channels-last."""
    with torch.no_grad():
        logits, features = module(torch.from_numpy(images.transpose(0, 3, 1, 2).copy()))
    return [logits.numpy(), features.numpy().transpose(0, 2, 3, 1)]


def relative_error(actual, expected):
    """The largest absolute difference, relative to the largest magnitude of ``expected``."""
    actual, expected = np.asarray(actual, "float64"), np.asarray(expected, "float64")
    return float(np.max(np.abs(actual - expected)) / np.max(np.abs(expected)))
