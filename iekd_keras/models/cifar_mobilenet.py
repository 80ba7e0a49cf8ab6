"""MobileNet-v1 adapted to 32x32 CIFAR images, as a two-output functional Keras model."""

import keras

from iekd_keras.models import _building_blocks as blocks

# (output channels, depthwise stride) of the 13 depthwise-separable blocks. This is the plan of
# `model/mobilenet.py` in the IE-KD authors' repository
# (aliyun/Revisiting-Knowledge-Distillation-an-Inheritance-and-Exploration-Framework):
# the standard MobileNet-v1 widths, but with only the 256- and 512-channel transitions strided.
_BLOCK_PLAN = (
    (64, 1),
    (128, 1),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 1),
    (1024, 1),
)
_STEM_FILTERS = 32
# `conv_init` of the reference, for the stem and every pointwise convolution.
_CONV_FAN_MODE = "fan_out"
# `linear_init` of the reference: weight N(0, 0.01), zero bias.
_CLASSIFIER_STDDEV = 0.01
# Stage taps: the last block at each spatial resolution (the block before each stride-2 block,
# and the last block), i.e. blocks 3, 5 and 13.
_STAGE_ENDS = tuple(
    index
    for index in range(1, len(_BLOCK_PLAN) + 1)
    if index == len(_BLOCK_PLAN) or _BLOCK_PLAN[index][1] == 2
)


def _separable_block(x, filters, strides, prefix):
    x = blocks.depthwise3x3(x, strides, name=f"{prefix}_depthwise")
    x = blocks.batch_norm(x, name=f"{prefix}_depthwise_bn")
    x = blocks.relu(x, name=f"{prefix}_depthwise_relu")
    x = blocks.conv1x1(x, filters, 1, name=f"{prefix}_pointwise", fan_mode=_CONV_FAN_MODE)
    x = blocks.batch_norm(x, name=f"{prefix}_pointwise_bn")
    return blocks.relu(x, name=f"{prefix}_pointwise_relu")


def cifar_mobilenet(num_classes=10, input_shape=(32, 32, 3), width_multiplier=1.0, name=None):
    """Build the CIFAR MobileNet-v1 used by IE-KD with outputs ``[logits, features]``.

    A conv3x3(32, stride 1)-BN-ReLU stem is followed by 13 depthwise-separable blocks
    (depthwise 3x3-BN-ReLU, pointwise 1x1-BN-ReLU) with output channels
    64, 128, 128, 256/s2, 256, 512/s2, 512 x5, 1024, 1024, then global average pooling and
    a dense layer giving logits without softmax. This channel and stride plan was checked
    against ``model/mobilenet.py`` of the IE-KD authors' repository: only the first 256- and
    first 512-channel blocks have stride 2, so a 32x32 input yields an 8x8x1024 ``features``
    map (the last block's ReLU, layer ``"features"``). As there, ``width_multiplier`` scales
    the block channels (``int(channels * width_multiplier)``) but not the 32-channel stem.
    Initialisation is that of the ``reset_parameters`` methods in ``model/mobilenet.py``
    (``_weights_init`` there is unused): the stem and every pointwise convolution get
    ``conv_init``, ``kaiming_normal_(mode="fan_out")`` with gain sqrt(2), i.e. normal with
    std ``sqrt(2 / (kh * kw * out_channels))``; every depthwise convolution gets
    ``dw_conv_init``, normal with std ``sqrt(2 / (kh * kw))`` = ``sqrt(2 / 9)`` (its fan is
    the receptive field alone); every batch norm ``bn_init``, weight 1 and bias 0; the dense
    layer ``linear_init``, weight normal with std 0.01 and a zero bias.
    Stage taps, for :func:`~iekd_keras.models.with_taps`: parameter-free layers holding the
    last block output at each resolution, ``"stage1"`` (block 3, 32x32x128 for a 32x32
    input), ``"stage2"`` (block 5, 16x16x256) and ``"stage3"`` (block 13, 8x8x1024, equal to
    ``features``).

    Args:
        num_classes: Number of logits.
        input_shape: Channels-last ``(height, width, channels)`` of one image.
        width_multiplier: Positive factor applied to the channels of every block.
        name: Model name; defaults to ``"mobilenet"``.

    Returns:
        A functional ``keras.Model`` mapping images to ``[logits, features]``.

    Example:
        >>> model = cifar_mobilenet(num_classes=100)
        >>> logits, features = model(images)  # (batch, 100), (batch, 8, 8, 1024)
    """
    if (
        isinstance(width_multiplier, bool)
        or not isinstance(width_multiplier, (int, float))
        or width_multiplier <= 0
    ):
        raise ValueError(
            f"cifar_mobilenet: width_multiplier must be a positive number; "
            f"got {width_multiplier!r}."
        )
    if int(min(filters for filters, _ in _BLOCK_PLAN) * width_multiplier) < 1:
        raise ValueError(
            f"cifar_mobilenet: width_multiplier={width_multiplier!r} leaves a block with no "
            "channels; use a value of at least 1/64."
        )
    inputs = blocks.model_inputs(input_shape, num_classes, "cifar_mobilenet")
    if name is None:
        name = "mobilenet"

    x = blocks.conv3x3(inputs, _STEM_FILTERS, 1, name="stem_conv", fan_mode=_CONV_FAN_MODE)
    x = blocks.batch_norm(x, name="stem_bn")
    x = blocks.relu(x, name="stem_relu")
    stage = 1
    for index, (filters, strides) in enumerate(_BLOCK_PLAN, 1):
        prefix = f"block{index}"
        x = _separable_block(x, int(filters * width_multiplier), strides, prefix)
        if index in _STAGE_ENDS:
            x = blocks.stage_output(x, stage)
            stage += 1
    features = blocks.features_output(x)

    logits = blocks.classifier_head(
        features,
        num_classes,
        kernel_initializer=keras.initializers.RandomNormal(stddev=_CLASSIFIER_STDDEV),
        bias_initializer="zeros",
    )
    return keras.Model(inputs=inputs, outputs=[logits, features], name=name)
