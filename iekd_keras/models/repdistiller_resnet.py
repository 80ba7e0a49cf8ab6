"""RepDistiller's ResNets as two-output functional Keras models.

The CIFAR ResNets (``resnet8`` ... ``resnet110``, ``resnet8x4``, ``resnet32x4``) follow
``models/resnet.py`` of HobbitLong/RepDistiller and are :func:`~iekd_keras.models.cifar_resnet`
with the projection shortcut, RepDistiller's widths and its initialisation; ``resnet50``
follows ``ResNet50`` of ``models/resnetv2.py`` (bottleneck blocks, CIFAR stem). Every builder
returns ``[logits, features]`` and holds the stage taps ``"stage1"``, ``"stage2"``, ... at the
maps RepDistiller's ``forward(x, is_feat=True)`` returns as ``f1``, ``f2``, ... (block outputs
after their ReLU). :func:`keras_layer_name` maps the module paths of both files' ``state_dict``
to the Keras layers.

Example:
    >>> teacher = resnet32x4(num_classes=100)
    >>> logits, features = teacher(images)  # (batch, 100), (batch, 8, 8, 256)
"""

import re

import keras

from iekd_keras.layers.initializers import pytorch_default_kernel
from iekd_keras.models import _building_blocks as blocks
from iekd_keras.models.cifar_resnet import cifar_resnet

_CIFAR_WIDTHS = (16, 16, 32, 64)
_X4_WIDTHS = (32, 64, 128, 256)
# ResNet50 of models/resnetv2.py: bottleneck stages of 64, 128, 256 and 512 planes (times 4 out).
_RESNET50_PLANES = (64, 128, 256, 512)
_RESNET50_STRIDES = (1, 2, 2, 2)
_RESNET50_BLOCKS = (3, 4, 6, 3)
_BOTTLENECK_EXPANSION = 4
# Both files initialise every convolution with kaiming_normal_(mode="fan_out").
_CONV_FAN_MODE = "fan_out"


def _repdistiller_cifar_resnet(arch, depth, widths, num_classes, input_shape, name):
    return cifar_resnet(
        depth,
        num_classes=num_classes,
        input_shape=input_shape,
        shortcut="B",
        name=name or f"repdistiller_{arch}",
        widths=widths,
        initialization="repdistiller",
    )


def resnet8(num_classes=100, input_shape=(32, 32, 3), name=None):
    """RepDistiller's ``resnet8``: 1 basic block per stage, widths 16/16/32/64.

    Example:
        >>> model = resnet8(num_classes=100)  # outputs [logits, features]
    """
    return _repdistiller_cifar_resnet("resnet8", 8, _CIFAR_WIDTHS, num_classes, input_shape, name)


def resnet14(num_classes=100, input_shape=(32, 32, 3), name=None):
    """RepDistiller's ``resnet14``: 2 basic blocks per stage, widths 16/16/32/64.

    Example:
        >>> model = resnet14(num_classes=100)  # outputs [logits, features]
    """
    return _repdistiller_cifar_resnet("resnet14", 14, _CIFAR_WIDTHS, num_classes, input_shape, name)


def resnet20(num_classes=100, input_shape=(32, 32, 3), name=None):
    """RepDistiller's ``resnet20``: 3 basic blocks per stage, widths 16/16/32/64.

    Example:
        >>> model = resnet20(num_classes=100)  # outputs [logits, features]
    """
    return _repdistiller_cifar_resnet("resnet20", 20, _CIFAR_WIDTHS, num_classes, input_shape, name)


def resnet32(num_classes=100, input_shape=(32, 32, 3), name=None):
    """RepDistiller's ``resnet32``: 5 basic blocks per stage, widths 16/16/32/64.

    Example:
        >>> model = resnet32(num_classes=100)  # outputs [logits, features]
    """
    return _repdistiller_cifar_resnet("resnet32", 32, _CIFAR_WIDTHS, num_classes, input_shape, name)


def resnet44(num_classes=100, input_shape=(32, 32, 3), name=None):
    """RepDistiller's ``resnet44``: 7 basic blocks per stage, widths 16/16/32/64.

    Example:
        >>> model = resnet44(num_classes=100)  # outputs [logits, features]
    """
    return _repdistiller_cifar_resnet("resnet44", 44, _CIFAR_WIDTHS, num_classes, input_shape, name)


def resnet56(num_classes=100, input_shape=(32, 32, 3), name=None):
    """RepDistiller's ``resnet56``: 9 basic blocks per stage, widths 16/16/32/64.

    Example:
        >>> model = resnet56(num_classes=100)  # outputs [logits, features]
    """
    return _repdistiller_cifar_resnet("resnet56", 56, _CIFAR_WIDTHS, num_classes, input_shape, name)


def resnet110(num_classes=100, input_shape=(32, 32, 3), name=None):
    """RepDistiller's ``resnet110``: 18 basic blocks per stage, widths 16/16/32/64.

    Example:
        >>> model = resnet110(num_classes=100)  # outputs [logits, features]
    """
    return _repdistiller_cifar_resnet(
        "resnet110", 110, _CIFAR_WIDTHS, num_classes, input_shape, name
    )


def resnet8x4(num_classes=100, input_shape=(32, 32, 3), name=None):
    """RepDistiller's ``resnet8x4``: 1 basic block per stage, widths 32/64/128/256 (stage 1
    starts with a projection, 32 -> 64 channels).

    Example:
        >>> model = resnet8x4(num_classes=100)  # features (batch, 8, 8, 256)
    """
    return _repdistiller_cifar_resnet("resnet8x4", 8, _X4_WIDTHS, num_classes, input_shape, name)


def resnet32x4(num_classes=100, input_shape=(32, 32, 3), name=None):
    """RepDistiller's ``resnet32x4``: 5 basic blocks per stage, widths 32/64/128/256 (stage 1
    starts with a projection, 32 -> 64 channels).

    Example:
        >>> model = resnet32x4(num_classes=100)  # features (batch, 8, 8, 256)
    """
    return _repdistiller_cifar_resnet("resnet32x4", 32, _X4_WIDTHS, num_classes, input_shape, name)


def _bottleneck_block(x, planes, strides, prefix):
    """conv1x1-BN-ReLU, conv3x3 (carrying the stride)-BN-ReLU, conv1x1 (4x planes)-BN, plus the
    shortcut (identity, or a strided 1x1 projection and batch norm where the shape changes),
    then ReLU."""
    in_planes = x.shape[-1]
    out_planes = _BOTTLENECK_EXPANSION * planes
    out = blocks.conv1x1(x, planes, 1, name=f"{prefix}_conv1", fan_mode=_CONV_FAN_MODE)
    out = blocks.batch_norm(out, name=f"{prefix}_bn1")
    out = blocks.relu(out, name=f"{prefix}_relu1")
    out = blocks.conv3x3(out, planes, strides, name=f"{prefix}_conv2", fan_mode=_CONV_FAN_MODE)
    out = blocks.batch_norm(out, name=f"{prefix}_bn2")
    out = blocks.relu(out, name=f"{prefix}_relu2")
    out = blocks.conv1x1(out, out_planes, 1, name=f"{prefix}_conv3", fan_mode=_CONV_FAN_MODE)
    out = blocks.batch_norm(out, name=f"{prefix}_bn3")

    if strides == 1 and in_planes == out_planes:
        residual = x
    else:
        residual = blocks.conv1x1(
            x, out_planes, strides, name=f"{prefix}_shortcut_conv", fan_mode=_CONV_FAN_MODE
        )
        residual = blocks.batch_norm(residual, name=f"{prefix}_shortcut_bn")

    out = keras.layers.Add(name=f"{prefix}_add")([out, residual])
    return blocks.relu(out, name=f"{prefix}_relu3")


def resnet50(num_classes=100, input_shape=(32, 32, 3), name=None):
    """RepDistiller's ``ResNet50`` (``models/resnetv2.py`` of HobbitLong/RepDistiller).

    A CIFAR stem (conv3x3(64), stride 1, BN-ReLU, no max pooling) is followed by four stages
    of 3, 4, 6 and 3 bottleneck blocks with 64, 128, 256 and 512 planes (outputs 4x wider) and
    strides 1, 2, 2 and 2, the stride on the 3x3 convolution; a block whose shape changes adds
    a 1x1 projection with batch norm. Then global average pooling and a dense layer.
    ``features`` (layer ``"features"``) is the last block's ReLU, 4x4x2048 for a 32x32 input;
    ``"stage1"`` .. ``"stage4"`` hold each stage's output (32x32x256, 16x16x512, 8x8x1024,
    4x4x2048), RepDistiller's ``f1`` .. ``f4``. Convolutions are Kaiming-normal over the
    fan-out, batch norms start at weight 1 and bias 0 (``zero_init_residual=False``), the dense
    layer keeps ``nn.Linear``'s default.

    Args:
        num_classes: Number of logits.
        input_shape: Channels-last ``(height, width, channels)`` of one image.
        name: Model name; defaults to ``"repdistiller_resnet50"``.

    Returns:
        A functional ``keras.Model`` mapping images to ``[logits, features]``.

    Example:
        >>> model = resnet50(num_classes=100)
        >>> logits, features = model(images)  # (batch, 100), (batch, 4, 4, 2048)
    """
    inputs = blocks.model_inputs(input_shape, num_classes, "resnet50")
    x = blocks.conv3x3(inputs, 64, 1, name="stem_conv", fan_mode=_CONV_FAN_MODE)
    x = blocks.batch_norm(x, name="stem_bn")
    x = blocks.relu(x, name="stem_relu")
    x = blocks.residual_stages(
        x, _RESNET50_PLANES, _RESNET50_STRIDES, _RESNET50_BLOCKS, _bottleneck_block
    )
    features = blocks.features_output(x)
    logits = blocks.classifier_head(
        features, num_classes, kernel_initializer=pytorch_default_kernel()
    )
    return keras.Model(
        inputs=inputs, outputs=[logits, features], name=name or "repdistiller_resnet50"
    )


_TOP_LEVEL_LAYERS = {"conv1": "stem_conv", "bn1": "stem_bn", "fc": "logits", "linear": "logits"}
_BLOCK_MODULE = re.compile(
    r"layer(?P<stage>\d+)\.(?P<index>\d+)\."
    r"(?:(?P<part>conv\d|bn\d)|(?:downsample|shortcut)\.(?P<shortcut>[01]))"
)


def keras_layer_name(torch_module_path):
    """The Keras layer holding the tensors of a module of RepDistiller's ResNets.

    Covers the ``state_dict`` module paths of ``models/resnet.py`` (``conv1``, ``bn1``,
    ``layer2.0.conv1``, ``layer2.0.downsample.0``, ``fc``) and of ``models/resnetv2.py``
    (``layer2.0.conv3``, ``layer2.0.shortcut.1``, ``linear``); block ``i`` of ``layer{s}``
    is the Keras block ``stage{s}_block{i + 1}``.

    Example:
        >>> keras_layer_name("layer2.0.downsample.1")
        'stage2_block1_shortcut_bn'
    """
    if torch_module_path in _TOP_LEVEL_LAYERS:
        return _TOP_LEVEL_LAYERS[torch_module_path]
    match = _BLOCK_MODULE.fullmatch(str(torch_module_path))
    if match is None:
        raise ValueError(
            f"keras_layer_name: {torch_module_path!r} is not a module path of RepDistiller's "
            "ResNets; expected 'conv1', 'bn1', 'fc', 'linear' or 'layer{s}.{i}.' followed by "
            "conv1-3, bn1-3, downsample.0/1 or shortcut.0/1, e.g. 'layer2.0.conv1'."
        )
    prefix = f"stage{match['stage']}_block{int(match['index']) + 1}"
    if match["shortcut"] is not None:
        return f"{prefix}_shortcut_{'conv' if match['shortcut'] == '0' else 'bn'}"
    return f"{prefix}_{match['part']}"
