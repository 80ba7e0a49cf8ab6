"""The ImageNet ResNet-18/34 of He et al. (2016), laid out like torchvision, as a two-output
functional Keras model."""

import keras

from iekd_keras.layers.initializers import (
    kaiming_normal,
    pytorch_default_bias,
    pytorch_default_kernel,
)
from iekd_keras.models import _building_blocks as blocks

_STAGE_WIDTHS = (64, 128, 256, 512)
_STAGE_STRIDES = (1, 2, 2, 2)
_BLOCKS_PER_STAGE = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}
# torchvision's ResNet.__init__: kaiming_normal_(mode="fan_out", nonlinearity="relu") for
# every convolution.
_CONV_FAN_MODE = "fan_out"


def _basic_block(x, planes, strides, prefix):
    """torchvision ``BasicBlock``: conv3x3-BN-ReLU-conv3x3-BN, plus shortcut, then ReLU.

    The shortcut is the identity, or a 1x1 convolution (no bias) plus batch norm where the
    stride or the number of channels changes.
    """
    in_planes = x.shape[-1]
    out = blocks.conv3x3(x, planes, strides, name=f"{prefix}_conv1", fan_mode=_CONV_FAN_MODE)
    out = blocks.batch_norm(out, name=f"{prefix}_bn1")
    out = blocks.relu(out, name=f"{prefix}_relu1")
    out = blocks.conv3x3(out, planes, 1, name=f"{prefix}_conv2", fan_mode=_CONV_FAN_MODE)
    out = blocks.batch_norm(out, name=f"{prefix}_bn2")

    if strides == 1 and in_planes == planes:
        residual = x
    else:
        residual = blocks.conv1x1(
            x, planes, strides, name=f"{prefix}_shortcut_conv", fan_mode=_CONV_FAN_MODE
        )
        residual = blocks.batch_norm(residual, name=f"{prefix}_shortcut_bn")

    out = keras.layers.Add(name=f"{prefix}_add")([out, residual])
    return blocks.relu(out, name=f"{prefix}_relu2")


def _stem(inputs):
    """conv7x7/2 (pad 3, no bias) - BN - ReLU - max-pool 3x3/2 (pad 1), padded like PyTorch."""
    x = keras.layers.ZeroPadding2D(padding=3, name="stem_conv_pad")(inputs)
    x = keras.layers.Conv2D(
        64,
        kernel_size=7,
        strides=2,
        padding="valid",
        use_bias=False,
        kernel_initializer=kaiming_normal(_CONV_FAN_MODE),
        name="stem_conv",
    )(x)
    x = blocks.batch_norm(x, name="stem_bn")
    x = blocks.relu(x, name="stem_relu")
    # PyTorch's MaxPool2d(3, 2, padding=1) pads with -inf. The input here is a ReLU output
    # (>= 0) and every 3x3 window holds at least one real pixel, so zero padding gives the
    # same maximum; "valid" pooling after it keeps the padding symmetric.
    x = keras.layers.ZeroPadding2D(padding=1, name="stem_pool_pad")(x)
    return keras.layers.MaxPooling2D(pool_size=3, strides=2, padding="valid", name="stem_pool")(x)


def imagenet_resnet(depth, num_classes=1000, input_shape=(224, 224, 3), name=None):
    """Build the torchvision ImageNet ResNet-18 or ResNet-34 with outputs ``[logits, features]``.

    The stem is conv7x7/2(64)-BN-ReLU followed by a 3x3/2 max-pool; then four stages of basic
    blocks with 64, 128, 256 and 512 channels (``[2, 2, 2, 2]`` blocks for depth 18,
    ``[3, 4, 6, 3]`` for depth 34). The first block of stages 2-4 has stride 2 and a
    1x1-convolution-plus-batch-norm projection shortcut. ``features`` is the last block's
    final ReLU (layer ``"features"``), i.e. the map that global average pooling reads:
    7x7x512 for a 224x224 input. A dense layer then gives the logits (no softmax).
    Stage taps: parameter-free layers ``"stage1"`` to ``"stage4"`` hold the output of each
    stage (56x56x64, 28x28x128, 14x14x256 and 7x7x512 for a 224x224 input; ``"stage4"``
    equals ``features``), for :func:`~iekd_keras.models.with_taps`.
    Trainable parameters match torchvision exactly (11,689,512 and 21,797,672 with 1000
    classes). Initialisation is that of torchvision's ``ResNet.__init__``
    (``torchvision/models/resnet.py``) with its default ``zero_init_residual=False``: every
    convolution (stem, block and 1x1 shortcut) ``kaiming_normal_(mode="fan_out",
    nonlinearity="relu")``, i.e. normal with std ``sqrt(2 / (kh * kw * out_channels))``; every
    batch norm weight 1 and bias 0 (the last one of each block included); the dense layer
    keeps ``nn.Linear``'s default, weight and bias uniform in ``+-1 / sqrt(512)``. Batch norm
    uses PyTorch's momentum (0.9 in Keras terms) and epsilon 1e-5; padding is PyTorch's.

    Args:
        depth: 18 or 34.
        num_classes: Number of logits.
        input_shape: Channels-last ``(height, width, channels)`` of one image.
        name: Model name; defaults to ``"resnet{depth}"``.

    Returns:
        A functional ``keras.Model`` mapping images to ``[logits, features]``.

    Example:
        >>> model = imagenet_resnet(18)
        >>> logits, features = model(images)  # (batch, 1000), (batch, 7, 7, 512)
    """
    if isinstance(depth, bool) or not isinstance(depth, int) or depth not in _BLOCKS_PER_STAGE:
        valid = ", ".join(str(d) for d in _BLOCKS_PER_STAGE)
        raise ValueError(
            f"imagenet_resnet: invalid depth={depth!r}; the depth must be one of {valid} "
            "(the basic-block ResNets)."
        )
    inputs = blocks.model_inputs(input_shape, num_classes, "imagenet_resnet")
    if name is None:
        name = f"resnet{depth}"

    x = _stem(inputs)

    x = blocks.residual_stages(
        x, _STAGE_WIDTHS, _STAGE_STRIDES, _BLOCKS_PER_STAGE[depth], _basic_block
    )
    features = blocks.features_output(x)

    # nn.Linear's default for both the weight and the bias.
    fan_in = _STAGE_WIDTHS[-1]
    logits = blocks.classifier_head(
        features,
        num_classes,
        kernel_initializer=pytorch_default_kernel(),
        bias_initializer=pytorch_default_bias(fan_in),
    )
    return keras.Model(inputs=inputs, outputs=[logits, features], name=name)
