"""PyTorch renderings of RepDistiller's ResNets, ResNet50, wide ResNets and VGGs, written from
``models/resnet.py``, ``models/resnetv2.py``, ``models/wrn.py`` and ``models/vgg.py`` of
HobbitLong/RepDistiller for the equality tests of the Keras builders.

Module paths (hence ``state_dict`` keys) are the reference's. Each network's ``forward`` returns
``(stage_maps, features, logits)``: the maps f1..fK of the reference's ``is_feat`` (without
``preact``), the map its pooling reads and the logits. Weights keep PyTorch's defaults: the
tests overwrite them with :func:`randomize`.
"""

import torch
import torch.nn.functional as F
from torch import nn


def _conv3x3(in_channels, out_channels, stride=1, bias=False):
    return nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=bias)


def _projection(in_channels, out_channels, stride):
    """1x1 strided convolution and batch norm: ``downsample`` / ``shortcut`` of the ResNets."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
        nn.BatchNorm2d(out_channels),
    )


# --- models/resnet.py ----------------------------------------------------------------------


class CifarBasicBlock(nn.Module):
    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        self.conv1 = _conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = _conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        changes_shape = stride != 1 or in_channels != out_channels
        self.downsample = _projection(in_channels, out_channels, stride) if changes_shape else None

    def forward(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + residual)


class CifarResNet(nn.Module):
    """``ResNet(depth, num_filters, "basicblock")``: ``num_filters`` = (stem, stage widths)."""

    def __init__(self, depth, num_filters, num_classes):
        super().__init__()
        blocks = (depth - 2) // 6
        stem, *widths = num_filters
        self.conv1 = _conv3x3(3, stem)
        self.bn1 = nn.BatchNorm2d(stem)
        in_channels = stem
        for stage, (width, stride) in enumerate(zip(widths, (1, 2, 2), strict=True), 1):
            units = []
            for index in range(blocks):
                units.append(CifarBasicBlock(in_channels, width, stride if index == 0 else 1))
                in_channels = width
            setattr(self, f"layer{stage}", nn.Sequential(*units))
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        maps = []
        for stage in (self.layer1, self.layer2, self.layer3):
            x = stage(x)
            maps.append(x)
        pooled = F.avg_pool2d(x, 8).flatten(1)
        return maps, x, self.fc(pooled)


# --- models/resnetv2.py --------------------------------------------------------------------


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_channels, planes, stride):
        super().__init__()
        out_channels = self.expansion * planes
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        changes_shape = stride != 1 or in_channels != out_channels
        self.shortcut = (
            _projection(in_channels, out_channels, stride) if changes_shape else nn.Sequential()
        )

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        return F.relu(self.bn3(self.conv3(y)) + self.shortcut(x))


class ResNet50(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.conv1 = _conv3x3(3, 64)
        self.bn1 = nn.BatchNorm2d(64)
        in_channels = 64
        layout = zip((64, 128, 256, 512), (3, 4, 6, 3), (1, 2, 2, 2), strict=True)
        for stage, (planes, count, stride) in enumerate(layout, 1):
            units = []
            for index in range(count):
                units.append(Bottleneck(in_channels, planes, stride if index == 0 else 1))
                in_channels = planes * Bottleneck.expansion
            setattr(self, f"layer{stage}", nn.Sequential(*units))
        self.linear = nn.Linear(in_channels, num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        maps = []
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = stage(x)
            maps.append(x)
        pooled = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return maps, x, self.linear(pooled)


# --- models/wrn.py -------------------------------------------------------------------------


class WideBlock(nn.Module):
    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = _conv3x3(in_channels, out_channels, stride)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = _conv3x3(out_channels, out_channels)
        self.same_width = in_channels == out_channels
        if not self.same_width:
            self.convShortcut = nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)

    def forward(self, x):
        activated = F.relu(self.bn1(x))
        y = F.relu(self.bn2(self.conv1(activated)))
        y = self.conv2(y)
        return y + (x if self.same_width else self.convShortcut(activated))


class WideGroup(nn.Module):
    """``NetworkBlock``: its blocks live under ``layer``."""

    def __init__(self, count, in_channels, out_channels, stride):
        super().__init__()
        blocks = [WideBlock(in_channels, out_channels, stride)]
        blocks += [WideBlock(out_channels, out_channels, 1) for _ in range(count - 1)]
        self.layer = nn.Sequential(*blocks)

    def forward(self, x):
        return self.layer(x)


class WideResNet(nn.Module):
    def __init__(self, depth, widen_factor, num_classes):
        super().__init__()
        count = (depth - 4) // 6
        widths = [16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = _conv3x3(3, 16)
        self.block1 = WideGroup(count, 16, widths[0], 1)
        self.block2 = WideGroup(count, widths[0], widths[1], 2)
        self.block3 = WideGroup(count, widths[1], widths[2], 2)
        self.bn1 = nn.BatchNorm2d(widths[2])
        self.fc = nn.Linear(widths[2], num_classes)

    def forward(self, x):
        x = self.conv1(x)
        maps = []
        for group in (self.block1, self.block2, self.block3):
            x = group(x)
            maps.append(x)
        features = F.relu(self.bn1(x))
        pooled = F.avg_pool2d(features, 8).flatten(1)
        return maps, features, self.fc(pooled)


# --- models/vgg.py -------------------------------------------------------------------------

VGG_CONVS_PER_BLOCK = {
    "vgg8": (1, 1, 1, 1, 1),
    "vgg11": (1, 1, 2, 2, 2),
    "vgg13": (2, 2, 2, 2, 2),
    "vgg16": (2, 2, 3, 3, 3),
    "vgg19": (2, 2, 4, 4, 4),
}


def _vgg_block(in_channels, out_channels, convs):
    """``convs`` times conv (bias)-BN-ReLU as one Sequential, without its last ReLU."""
    modules = []
    for _ in range(convs):
        modules += [_conv3x3(in_channels, out_channels, bias=True), nn.BatchNorm2d(out_channels)]
        modules.append(nn.ReLU())
        in_channels = out_channels
    return nn.Sequential(*modules[:-1])


class VGG(nn.Module):
    """``VGG(cfg, batch_norm=True)``."""

    def __init__(self, convs_per_block, num_classes):
        super().__init__()
        in_channels = 3
        for block, (width, convs) in enumerate(
            zip((64, 128, 256, 512, 512), convs_per_block, strict=True)
        ):
            setattr(self, f"block{block}", _vgg_block(in_channels, width, convs))
            in_channels = width
        self.classifier = nn.Linear(512, num_classes)

    def forward(self, x):
        height = x.shape[2]
        x = F.max_pool2d(F.relu(self.block0(x)), 2)
        maps = []
        for block in (1, 2, 3, 4):
            x = F.relu(getattr(self, f"block{block}")(x))
            maps.append(x)
            if block < 3 or (block == 3 and height == 64):
                x = F.max_pool2d(x, 2)
        pooled = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return maps, x, self.classifier(pooled)


_CIFAR_FILTERS = (16, 16, 32, 64)
_X4_FILTERS = (32, 64, 128, 256)
RESNET_DEPTHS = {
    "resnet8": (8, _CIFAR_FILTERS),
    "resnet14": (14, _CIFAR_FILTERS),
    "resnet20": (20, _CIFAR_FILTERS),
    "resnet32": (32, _CIFAR_FILTERS),
    "resnet44": (44, _CIFAR_FILTERS),
    "resnet56": (56, _CIFAR_FILTERS),
    "resnet110": (110, _CIFAR_FILTERS),
    "resnet8x4": (8, _X4_FILTERS),
    "resnet32x4": (32, _X4_FILTERS),
}
WRN_SIZES = {"wrn_16_1": (16, 1), "wrn_16_2": (16, 2), "wrn_40_1": (40, 1), "wrn_40_2": (40, 2)}
ARCHS = (*RESNET_DEPTHS, "ResNet50", *WRN_SIZES, *VGG_CONVS_PER_BLOCK)


def build(arch, num_classes):
    """The rendering of RepDistiller's ``model_dict[arch]``, in eval mode."""
    if arch in RESNET_DEPTHS:
        network = CifarResNet(*RESNET_DEPTHS[arch], num_classes)
    elif arch == "ResNet50":
        network = ResNet50(num_classes)
    elif arch in WRN_SIZES:
        network = WideResNet(*WRN_SIZES[arch], num_classes)
    else:
        network = VGG(VGG_CONVS_PER_BLOCK[arch], num_classes)
    return network.eval()


def randomize(network, seed):
    """Draw every parameter and batch-norm statistic, so that a mapping error cannot hide
    behind a default (weight 1, bias 0, mean 0, variance 1): convolution and linear weights
    normal with std sqrt(1 / fan_in), biases and batch-norm betas normal(0, 0.1), gammas
    uniform(0.5, 1.5), running means normal(0, 0.1), running variances uniform(0.5, 2)."""
    generator = torch.Generator().manual_seed(seed)

    def normal(shape, std):
        return torch.randn(shape, generator=generator) * std

    def uniform(shape, low, high):
        return low + (high - low) * torch.rand(shape, generator=generator)

    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                fan_in = module.weight[0].numel()
                module.weight.copy_(normal(module.weight.shape, fan_in**-0.5))
                if module.bias is not None:
                    module.bias.copy_(normal(module.bias.shape, 0.1))
            elif isinstance(module, nn.BatchNorm2d):
                channels = module.num_features
                module.weight.copy_(uniform(channels, 0.5, 1.5))
                module.bias.copy_(normal(channels, 0.1))
                module.running_mean.copy_(normal(channels, 0.1))
                module.running_var.copy_(uniform(channels, 0.5, 2.0))
    return network
