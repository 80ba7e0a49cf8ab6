"""RepDistiller's wide ResNets (``models/wrn.py`` of HobbitLong/RepDistiller).

RepDistiller's ``WideResNet`` is, layer for layer, :func:`~iekd_keras.models.wide_resnet`:
the same pre-activation blocks (a block whose width changes feeds its BN-ReLU input to both
the 3x3 convolution and the 1x1 projection), the final BN-ReLU, fan-out normal convolutions,
``nn.Linear``'s default kernel and a zero bias. Its ``is_feat`` maps ``f1`` .. ``f3`` are the
group outputs before any BN-ReLU, which the library's ``"stage1"`` .. ``"stage3"`` hold;
``features`` is the final BN-ReLU. :func:`keras_layer_name` maps its ``state_dict`` module
paths to the Keras layers.

Example:
    >>> teacher = wrn_40_2(num_classes=100)
    >>> logits, features = teacher(images)  # (batch, 100), (batch, 8, 8, 128)
"""

import re

from iekd_keras.models.wide_resnet import wide_resnet


def _repdistiller_wrn(depth, width, num_classes, input_shape, name):
    return wide_resnet(
        depth,
        width,
        num_classes=num_classes,
        input_shape=input_shape,
        name=name or f"repdistiller_wrn_{depth}_{width}",
    )


def wrn_16_1(num_classes=100, input_shape=(32, 32, 3), name=None):
    """RepDistiller's ``wrn_16_1``: WRN-16-1, 2 blocks per group, 16/32/64 channels.

    Example:
        >>> model = wrn_16_1(num_classes=100)  # outputs [logits, features]
    """
    return _repdistiller_wrn(16, 1, num_classes, input_shape, name)


def wrn_16_2(num_classes=100, input_shape=(32, 32, 3), name=None):
    """RepDistiller's ``wrn_16_2``: WRN-16-2, 2 blocks per group, 32/64/128 channels.

    Example:
        >>> model = wrn_16_2(num_classes=100)  # outputs [logits, features]
    """
    return _repdistiller_wrn(16, 2, num_classes, input_shape, name)


def wrn_40_1(num_classes=100, input_shape=(32, 32, 3), name=None):
    """RepDistiller's ``wrn_40_1``: WRN-40-1, 6 blocks per group, 16/32/64 channels.

    Example:
        >>> model = wrn_40_1(num_classes=100)  # outputs [logits, features]
    """
    return _repdistiller_wrn(40, 1, num_classes, input_shape, name)


def wrn_40_2(num_classes=100, input_shape=(32, 32, 3), name=None):
    """RepDistiller's ``wrn_40_2``: WRN-40-2, 6 blocks per group, 32/64/128 channels.

    Example:
        >>> model = wrn_40_2(num_classes=100)  # outputs [logits, features]
    """
    return _repdistiller_wrn(40, 2, num_classes, input_shape, name)


_TOP_LEVEL_LAYERS = {"conv1": "stem_conv", "bn1": "final_bn", "fc": "logits"}
_BLOCK_MODULE = re.compile(
    r"block(?P<group>\d+)\.layer\.(?P<index>\d+)\.(?P<part>bn[12]|conv[12]|convShortcut)"
)


def keras_layer_name(torch_module_path):
    """The Keras layer holding the tensors of a module of RepDistiller's ``WideResNet``.

    ``conv1`` is the stem, ``bn1`` the final batch norm, ``fc`` the classifier, and block ``i``
    of ``block{g}.layer`` the Keras block ``group{g}_block{i + 1}`` (``convShortcut`` its
    ``_shortcut``).

    Example:
        >>> keras_layer_name("block2.layer.0.convShortcut")
        'group2_block1_shortcut'
    """
    if torch_module_path in _TOP_LEVEL_LAYERS:
        return _TOP_LEVEL_LAYERS[torch_module_path]
    match = _BLOCK_MODULE.fullmatch(str(torch_module_path))
    if match is None:
        raise ValueError(
            f"keras_layer_name: {torch_module_path!r} is not a module path of RepDistiller's "
            "WideResNet; expected 'conv1', 'bn1', 'fc' or 'block{g}.layer.{i}.' followed by "
            "bn1, bn2, conv1, conv2 or convShortcut, e.g. 'block1.layer.0.conv1'."
        )
    part = "shortcut" if match["part"] == "convShortcut" else match["part"]
    return f"group{match['group']}_block{int(match['index']) + 1}_{part}"
