"""The networks of the released IE-KD code, for its PyTorch checkpoints.

The IE-KD authors' code (aliyun/Revisiting-Knowledge-Distillation-an-Inheritance-and-
Exploration-Framework) trains the networks of its ``model/`` directory; the library builds the
same networks (same layers, order, strides, padding and outputs ``[logits, features]``):

============================  ==========================================  ===================
released constructor          library builder                             arch names here
============================  ==========================================  ===================
``model/resnet.py``           ``cifar_resnet(depth, shortcut="A")``       ``resnet8`` ...
``resnet20`` ... (option A)                                               ``resnet110``
``resnet20B`` ... (option B)  ``cifar_resnet(depth, shortcut="B")``       ``resnet8b`` ...
                                                                          ``resnet110b``
``model/wide_resnet.py``      ``wide_resnet(depth, width)``               ``wrn_16_1``,
``WRN16_1`` ... ``WRN46_4``                                               ``wrn_40_2``, ...
``model/mobilenet.py``        ``cifar_mobilenet()``                       ``mobilenet``
``mobilenet``
============================  ==========================================  ===================

Arch names are the library's registry names (:func:`iekd_keras.models.get_model`), so an
imported teacher is the network a config's ``teacher.model`` names. Each family has a map from
the released code's ``state_dict`` module paths to the library's layer names.
The wide ResNet of the released code pools with a fixed 8x8 window, the library globally:
they agree on 32x32 images, the released code's input.

Example:
    >>> entry = IEKD["resnet56b"]
    >>> model = entry.builder(num_classes=100)
    >>> entry.keras_layer_name("layer2.0.shortcut.0")
    'stage2_block1_shortcut_conv'
"""

import re

from iekd_keras.models import repdistiller_wrn
from iekd_keras.models.registry import get_model
from iekd_keras.models.zoo import ZooEntry

# Depths of model/resnet.py's ResNet that the library's registry builds (any (d - 2) % 6 == 0).
_RESNET_DEPTHS = (8, 14, 20, 32, 44, 56, 110)
# model/wide_resnet.py defines WRN16_1, WRN16_2, WRN40_1, WRN28_10 and WRN46_4; WRN-40-2 is the
# usual CIFAR-100 teacher of the same class.
_WRN_SIZES = ((16, 1), (16, 2), (40, 1), (40, 2), (28, 10), (46, 4))


def _rename(module_path, whole_names, patterns, network):
    """The Keras layer of ``module_path``: a whole-name entry, else the first matching pattern
    (its template filled with the match's groups, the block index counted from 1)."""
    if module_path in whole_names:
        return whole_names[module_path]
    for pattern, template in patterns:
        match = pattern.fullmatch(module_path)
        if match:
            fields = match.groupdict()
            return template.format(**fields, block=int(fields["index"]) + 1)
    raise ValueError(
        f"{module_path!r} is not a module path of the released IE-KD code's {network}."
    )


_RESNET_NAMES = {"conv1": "stem_conv", "bn1": "stem_bn", "linear": "logits"}
_RESNET_PATTERNS = (
    (
        re.compile(r"layer(?P<stage>\d+)\.(?P<index>\d+)\.(?P<part>conv1|bn1|conv2|bn2)"),
        "stage{stage}_block{block}_{part}",
    ),
    (
        re.compile(r"layer(?P<stage>\d+)\.(?P<index>\d+)\.shortcut\.0"),
        "stage{stage}_block{block}_shortcut_conv",
    ),
    (
        re.compile(r"layer(?P<stage>\d+)\.(?P<index>\d+)\.shortcut\.1"),
        "stage{stage}_block{block}_shortcut_bn",
    ),
)

_MOBILENET_NAMES = {"conv1": "stem_conv", "bn1": "stem_bn", "linear": "logits"}
_MOBILENET_PARTS = {
    "conv1": "depthwise",
    "bn1": "depthwise_bn",
    "conv2": "pointwise",
    "bn2": "pointwise_bn",
}
_MOBILENET_PATTERNS = tuple(
    (re.compile(rf"layers\.(?P<index>\d+)\.{torch_part}"), f"block{{block}}_{keras_part}")
    for torch_part, keras_part in _MOBILENET_PARTS.items()
)


def resnet_layer_name(torch_module_path):
    """The library layer of a module of ``model/resnet.py``'s ``ResNet`` (options A and B).

    Example:
        >>> resnet_layer_name("layer1.2.bn2")
        'stage1_block3_bn2'
    """
    return _rename(torch_module_path, _RESNET_NAMES, _RESNET_PATTERNS, "ResNet")


def wide_resnet_layer_name(torch_module_path):
    """The library layer of a module of ``model/wide_resnet.py``'s ``WideResNet``.

    Example:
        >>> wide_resnet_layer_name("block3.layer.0.convShortcut")
        'group3_block1_shortcut'
    """
    # The released and RepDistiller's WideResNet share their module paths: one map serves both.
    try:
        return repdistiller_wrn.keras_layer_name(torch_module_path)
    except ValueError:
        raise ValueError(
            f"{torch_module_path!r} is not a module path of the released IE-KD code's WideResNet."
        ) from None


def mobilenet_layer_name(torch_module_path):
    """The library layer of a module of ``model/mobilenet.py``'s ``mobilenet``.

    Example:
        >>> mobilenet_layer_name("layers.12.conv1")
        'block13_depthwise'
    """
    return _rename(torch_module_path, _MOBILENET_NAMES, _MOBILENET_PATTERNS, "mobilenet")


def _registry_builder(arch):
    """``builder(num_classes=100, input_shape=(32, 32, 3), name=None)`` of a registry name."""

    def builder(num_classes=100, input_shape=(32, 32, 3), name=None):
        return get_model(arch, num_classes=num_classes, input_shape=input_shape, name=name or arch)

    builder.__name__ = arch
    builder.__doc__ = f"The library's {arch!r} (see iekd_keras.models.get_model)."
    return builder


def _entries():
    entries = {}
    for depth in _RESNET_DEPTHS:
        for suffix in ("", "b"):
            arch = f"resnet{depth}{suffix}"
            entries[arch] = ZooEntry(_registry_builder(arch), resnet_layer_name)
    for depth, width in _WRN_SIZES:
        arch = f"wrn_{depth}_{width}"
        entries[arch] = ZooEntry(_registry_builder(arch), wide_resnet_layer_name)
    entries["mobilenet"] = ZooEntry(_registry_builder("mobilenet"), mobilenet_layer_name)
    return entries


# {arch: ZooEntry(builder, keras_layer_name)} for the released IE-KD code's checkpoints.
IEKD = _entries()

__all__ = ["IEKD", "mobilenet_layer_name", "resnet_layer_name", "wide_resnet_layer_name"]
