"""PyTorch renderings of RepDistiller's MobileNetV2 (``mobile_half``), ShuffleV1 and ShuffleV2,
written from ``models/mobilenetv2.py``, ``models/ShuffleNetv1.py`` and ``models/ShuffleNetv2.py``
for the equality tests of the Keras builders.

Module paths (hence ``state_dict`` keys) are the reference's. Each network's ``forward`` returns
``(stage_maps, features, logits)``: the maps f1..fK of the reference's ``is_feat`` (without
``preact``), the map its global pooling reads and the logits.
"""

import torch
import torch.nn.functional as F
from torch import nn


def channel_shuffle_nchw(x, groups):
    """The reference's shuffle: view (N, g, C/g, H, W), swap the two channel axes, flatten."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


# --- models/mobilenetv2.py -----------------------------------------------------------------


def _conv_bn_relu(in_channels, out_channels, kernel_size, stride):
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
    )


class InvertedResidual(nn.Module):
    def __init__(self, in_channels, out_channels, stride, expansion):
        super().__init__()
        hidden = in_channels * expansion
        self.residual = stride == 1 and in_channels == out_channels
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        )

    def forward(self, x):
        branch = self.conv(x)
        return x + branch if self.residual else branch


class MobileNetV2Half(nn.Module):
    """``mobile_half``: expansion 6, width 0.5, last 1280 channels, a stride-2 stem."""

    # (expansion, channels before the width, blocks, first stride) of the seven block groups.
    PLAN = (
        (1, 16, 1, 1),
        (6, 24, 2, 1),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    )
    TAPPED = (1, 2, 4, 6)

    def __init__(self, num_classes=100, input_size=32, width=0.5):
        super().__init__()
        channels = int(32 * width)
        self.conv1 = _conv_bn_relu(3, channels, 3, 2)
        self.blocks = nn.ModuleList()
        for expansion, out, count, stride in self.PLAN:
            group = []
            for index in range(count):
                out_channels = int(out * width)
                group.append(
                    InvertedResidual(channels, out_channels, stride if index == 0 else 1, expansion)
                )
                channels = out_channels
            self.blocks.append(nn.Sequential(*group))
        self.conv2 = _conv_bn_relu(channels, 1280, 1, 1)
        self.classifier = nn.Sequential(nn.Linear(1280, num_classes))
        self.avgpool = nn.AvgPool2d(input_size // 16, ceil_mode=True)

    def forward(self, x):
        x = self.conv1(x)
        stage_maps = []
        for index, group in enumerate(self.blocks):
            x = group(x)
            if index in self.TAPPED:
                stage_maps.append(x)
        features = self.conv2(x)
        logits = self.classifier(self.avgpool(features).flatten(1))
        return stage_maps, features, logits


# --- models/ShuffleNetv1.py ----------------------------------------------------------------


class ShuffleV1Bottleneck(nn.Module):
    def __init__(self, in_channels, out_channels, stride, groups):
        super().__init__()
        self.stride = stride
        middle = out_channels // 4
        self.first_groups = 1 if in_channels == 24 else groups
        self.conv1 = nn.Conv2d(in_channels, middle, 1, groups=self.first_groups, bias=False)
        self.bn1 = nn.BatchNorm2d(middle)
        self.conv2 = nn.Conv2d(middle, middle, 3, stride, 1, groups=middle, bias=False)
        self.bn2 = nn.BatchNorm2d(middle)
        self.conv3 = nn.Conv2d(middle, out_channels, 1, groups=groups, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Sequential()
        if stride == 2:
            self.shortcut = nn.Sequential(nn.AvgPool2d(3, stride=2, padding=1))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = channel_shuffle_nchw(y, self.first_groups)
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        shortcut = self.shortcut(x)
        return F.relu(torch.cat([y, shortcut], 1) if self.stride == 2 else y + shortcut)


class ShuffleV1(nn.Module):
    def __init__(self, num_classes=100, out_channels=(240, 480, 960), blocks=(4, 8, 4), groups=3):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 24, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(24)
        channels = 24
        for layer, (out, count) in enumerate(zip(out_channels, blocks, strict=True), 1):
            stack = []
            for index in range(count):
                widening = channels if index == 0 else 0
                stack.append(
                    ShuffleV1Bottleneck(channels, out - widening, 2 if index == 0 else 1, groups)
                )
                channels = out
            setattr(self, f"layer{layer}", nn.Sequential(*stack))
        self.linear = nn.Linear(channels, num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        stage_maps = []
        for layer in (self.layer1, self.layer2, self.layer3):
            x = layer(x)
            stage_maps.append(x)
        logits = self.linear(F.avg_pool2d(x, 4).flatten(1))
        return stage_maps, x, logits


# --- models/ShuffleNetv2.py ----------------------------------------------------------------


class ShuffleV2Basic(nn.Module):
    def __init__(self, channels):
        super().__init__()
        half = channels // 2
        self.half = half
        self.conv1 = nn.Conv2d(half, half, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(half)
        self.conv2 = nn.Conv2d(half, half, 3, 1, 1, groups=half, bias=False)
        self.bn2 = nn.BatchNorm2d(half)
        self.conv3 = nn.Conv2d(half, half, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(half)

    def forward(self, x):
        passed, branch = x[:, : self.half], x[:, self.half :]
        y = F.relu(self.bn1(self.conv1(branch)))
        y = self.bn2(self.conv2(y))
        y = F.relu(self.bn3(self.conv3(y)))
        return channel_shuffle_nchw(torch.cat([passed, y], 1), 2)


class ShuffleV2Down(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        half = out_channels // 2
        self.conv1 = nn.Conv2d(in_channels, in_channels, 3, 2, 1, groups=in_channels, bias=False)
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv2 = nn.Conv2d(in_channels, half, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(half)
        self.conv3 = nn.Conv2d(in_channels, half, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(half)
        self.conv4 = nn.Conv2d(half, half, 3, 2, 1, groups=half, bias=False)
        self.bn4 = nn.BatchNorm2d(half)
        self.conv5 = nn.Conv2d(half, half, 1, bias=False)
        self.bn5 = nn.BatchNorm2d(half)

    def forward(self, x):
        left = F.relu(self.bn2(self.conv2(self.bn1(self.conv1(x)))))
        right = F.relu(self.bn3(self.conv3(x)))
        right = F.relu(self.bn5(self.conv5(self.bn4(self.conv4(right)))))
        return channel_shuffle_nchw(torch.cat([left, right], 1), 2)


class ShuffleV2(nn.Module):
    """``net_size=1``."""

    def __init__(self, num_classes=100, out_channels=(116, 232, 464), blocks=(3, 7, 3), last=1024):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 24, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(24)
        channels = 24
        for layer, (out, count) in enumerate(zip(out_channels, blocks, strict=True), 1):
            stack = [ShuffleV2Down(channels, out)] + [ShuffleV2Basic(out) for _ in range(count)]
            setattr(self, f"layer{layer}", nn.Sequential(*stack))
            channels = out
        self.conv2 = nn.Conv2d(channels, last, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(last)
        self.linear = nn.Linear(last, num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        stage_maps = []
        for layer in (self.layer1, self.layer2, self.layer3):
            x = layer(x)
            stage_maps.append(x)
        features = F.relu(self.bn2(self.conv2(x)))
        logits = self.linear(F.avg_pool2d(features, 4).flatten(1))
        return stage_maps, features, logits


# --- random weights and the fallback loader -------------------------------------------------


def randomize(network, seed=0, batch=8, input_size=32):
    """Random weights everywhere, and running statistics that keep activations O(1): BN affine
    parameters and every other weight are redrawn; the running statistics are those of one
    training-mode pass over random images, then perturbed. Leaves the network in eval mode."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in network.named_parameters():
            noise = torch.rand(parameter.shape, generator=generator)
            if name.rsplit(".", 1)[-1] == "weight" and parameter.dim() == 1:  # BN gamma
                parameter.copy_(0.5 + noise)
            elif parameter.dim() == 1:  # BN beta, linear bias
                parameter.copy_(noise - 0.5)
            else:  # conv / linear weights, uniform with the default fan-in scale
                fan_in = parameter[0].numel()
                parameter.copy_((2.0 * noise - 1.0) * (3.0 / fan_in) ** 0.5)
        for module in network.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.momentum = 1.0  # the running statistics become one batch's
        network.train()
        images = torch.randn((batch, 3, input_size, input_size), generator=generator)
        network(images)
        for module in network.modules():
            if isinstance(module, nn.BatchNorm2d):
                shape = module.running_mean.shape
                module.running_mean.add_(0.1 * torch.randn(shape, generator=generator))
                module.running_var.mul_(0.8 + 0.4 * torch.rand(shape, generator=generator))
    return network.eval()
