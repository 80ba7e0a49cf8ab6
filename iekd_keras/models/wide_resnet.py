"""Wide residual networks (Zagoruyko & Komodakis, 2016) as two-output functional Keras models."""

import functools

import keras

from iekd_keras.layers.initializers import pytorch_default_kernel
from iekd_keras.models import _building_blocks as blocks

_GROUP_STRIDES = (1, 2, 2)
# Every convolution of the reference: kaiming_normal_(mode="fan_out", nonlinearity="relu").
_CONV_FAN_MODE = "fan_out"


def _wide_block(x, planes, strides, prefix, dropout_rate):
    """Pre-activation block; the BN-ReLU output also feeds the projection shortcut."""
    in_planes = x.shape[-1]
    equal_in_out = in_planes == planes
    preactivated = blocks.batch_norm(x, name=f"{prefix}_bn1")
    preactivated = blocks.relu(preactivated, name=f"{prefix}_relu1")
    if not equal_in_out:
        x = preactivated

    out = blocks.conv3x3(
        preactivated, planes, strides, name=f"{prefix}_conv1", fan_mode=_CONV_FAN_MODE
    )
    out = blocks.batch_norm(out, name=f"{prefix}_bn2")
    out = blocks.relu(out, name=f"{prefix}_relu2")
    if dropout_rate > 0:
        out = keras.layers.Dropout(dropout_rate, name=f"{prefix}_dropout")(out)
    out = blocks.conv3x3(out, planes, 1, name=f"{prefix}_conv2", fan_mode=_CONV_FAN_MODE)

    if equal_in_out:
        residual = x
    else:
        residual = blocks.conv1x1(x, planes, strides, f"{prefix}_shortcut", fan_mode=_CONV_FAN_MODE)
    return keras.layers.Add(name=f"{prefix}_add")([out, residual])


def wide_resnet(depth, width, num_classes=10, input_shape=(32, 32, 3), dropout_rate=0.0, name=None):
    """Build WRN-``depth``-``width`` with outputs ``[logits, features]``.

    A conv3x3(16) stem is followed by three groups of ``(depth - 4) / 6`` pre-activation
    blocks with ``16 * width``, ``32 * width`` and ``64 * width`` channels and strides 1, 2
    and 2. A block whose channel count changes applies BN-ReLU to its input and feeds that
    to both the first 3x3 convolution and a 1x1 projection shortcut; otherwise the shortcut
    is the untouched input. After the last group a BN-ReLU gives ``features`` (layer
    ``"features"``, 8x8x(64 * width) for a 32x32 input), then global average pooling and a
    dense layer give logits without softmax. Initialisation is that of ``WideResNet.__init__``
    in ``model/wide_resnet.py`` of the IE-KD authors' repository
    (aliyun/Revisiting-Knowledge-Distillation-an-Inheritance-and-Exploration-Framework): every
    convolution (stem, block and 1x1 shortcut) ``kaiming_normal_(mode="fan_out",
    nonlinearity="relu")``, i.e. normal with std ``sqrt(2 / (kh * kw * out_channels))``; batch
    norm weight 1 and bias 0; the dense kernel keeps ``nn.Linear``'s default, uniform in
    ``+-1 / sqrt(64 * width)``, and the dense bias is zero. Batch norm uses PyTorch's
    momentum (0.9 in Keras terms) and epsilon 1e-5.
    Stage taps: parameter-free layers ``"stage1"``, ``"stage2"`` and ``"stage3"`` hold the
    output of each group (its last block's residual sum, before any BN-ReLU: 32x32, 16x16 and
    8x8 for a 32x32 input), the points where the official attention-transfer code takes its
    group outputs; ``features`` is the final BN-ReLU of ``"stage3"``. For
    :func:`~iekd_keras.models.with_taps`.

    Args:
        depth: Total depth; ``(depth - 4) % 6 == 0`` and ``depth >= 10`` (e.g. 16, 28, 40).
        width: Widening factor ``k >= 1``.
        num_classes: Number of logits.
        input_shape: Channels-last ``(height, width, channels)`` of one image.
        dropout_rate: Dropout between the two convolutions of each block; 0 disables it.
        name: Model name; defaults to ``"wrn_{depth}_{width}"``.

    Returns:
        A functional ``keras.Model`` mapping images to ``[logits, features]``.

    Example:
        >>> model = wide_resnet(40, 2, num_classes=100)
        >>> logits, features = model(images)  # (batch, 100), (batch, 8, 8, 128)
    """
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 10 or (depth - 4) % 6:
        raise ValueError(
            f"wide_resnet: invalid depth={depth!r}; the depth must be an integer with "
            "(depth - 4) % 6 == 0 and depth >= 10, e.g. 16, 22, 28 or 40."
        )
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(
            f"wide_resnet: invalid width={width!r}; the widening factor must be an integer >= 1."
        )
    if not 0.0 <= dropout_rate < 1.0:
        raise ValueError(
            f"wide_resnet: dropout_rate must be in [0, 1); got dropout_rate={dropout_rate!r}."
        )
    inputs = blocks.model_inputs(input_shape, num_classes, "wide_resnet")
    blocks_per_group = (depth - 4) // 6
    group_widths = (16 * width, 32 * width, 64 * width)
    if name is None:
        name = f"wrn_{depth}_{width}"

    x = blocks.conv3x3(inputs, 16, 1, name="stem_conv", fan_mode=_CONV_FAN_MODE)
    x = blocks.residual_stages(
        x,
        group_widths,
        _GROUP_STRIDES,
        (blocks_per_group,) * len(group_widths),
        functools.partial(_wide_block, dropout_rate=dropout_rate),
        prefix="group",
    )
    x = blocks.batch_norm(x, name="final_bn")
    features = blocks.relu(x, name="features")

    # The reference keeps nn.Linear's default weight and zeroes the bias.
    logits = blocks.classifier_head(
        features,
        num_classes,
        kernel_initializer=pytorch_default_kernel(),
        bias_initializer="zeros",
    )
    return keras.Model(inputs=inputs, outputs=[logits, features], name=name)
