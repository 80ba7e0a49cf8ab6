"""Private layer factories shared by the backbones.

Each backbone passes the initialisation of its reference file; a factory's defaults are those
of the CIFAR ResNet (``_weights_init`` in ``model/resnet.py`` of the IE-KD authors' code):

* convolution and dense kernels: ``kaiming_normal_`` with fan-in, gain sqrt(2)
  (``kaiming_normal("fan_in")``),
* dense bias: PyTorch's ``nn.Linear`` default, uniform in ``[-1/sqrt(fan_in), 1/sqrt(fan_in)]``,
* batch normalisation: weight 1, bias 0 (the Keras and PyTorch default), ``momentum=0.9``
  (PyTorch ``momentum=0.1``) and ``epsilon=1e-5``, as ``iekd_keras.layers.BatchNormalization``
  (Keras's layer, fused on TensorFlow),
* 3x3 convolutions pad one pixel on every side, also when strided.
"""

import keras

from iekd_keras.layers.batch_normalization import BatchNormalization
from iekd_keras.layers.initializers import (
    depthwise_kaiming_normal,
    kaiming_normal,
    pytorch_default_bias,
)

BATCH_NORM_MOMENTUM = 0.9
BATCH_NORM_EPSILON = 1e-5


def pytorch_padding(x, strides, name):
    """``(x, padding)`` for a 3x3 kernel padded by one pixel on every side, as PyTorch does:
    ``"same"`` at stride 1; when strided, an explicit ``ZeroPadding2D`` layer ``{name}_pad`` and
    ``"valid"`` (Keras's ``"same"`` would pad only the bottom and right)."""
    if strides == 1:
        return x, "same"
    return keras.layers.ZeroPadding2D(padding=1, name=f"{name}_pad")(x), "valid"


def conv3x3(x, filters, strides, name, fan_mode="fan_in"):
    """3x3 convolution without bias, padded by one pixel on every side (PyTorch style), with a
    Kaiming-normal kernel over ``fan_mode``."""
    x, padding = pytorch_padding(x, strides, name)
    return keras.layers.Conv2D(
        filters,
        kernel_size=3,
        strides=strides,
        padding=padding,
        use_bias=False,
        kernel_initializer=kaiming_normal(fan_mode),
        name=name,
    )(x)


def conv1x1(x, filters, strides, name, fan_mode="fan_in"):
    """1x1 convolution without bias, with a Kaiming-normal kernel over ``fan_mode``."""
    return keras.layers.Conv2D(
        filters,
        kernel_size=1,
        strides=strides,
        padding="valid",
        use_bias=False,
        kernel_initializer=kaiming_normal(fan_mode),
        name=name,
    )(x)


def depthwise3x3(x, strides, name):
    """3x3 depthwise convolution without bias, padded by one pixel on every side."""
    x, padding = pytorch_padding(x, strides, name)
    return keras.layers.DepthwiseConv2D(
        kernel_size=3,
        strides=strides,
        padding=padding,
        use_bias=False,
        depthwise_initializer=depthwise_kaiming_normal(),
        name=name,
    )(x)


def batch_norm(x, name):
    """Batch normalisation with PyTorch-matching momentum and epsilon, computed by TensorFlow's
    fused kernel where it can be (``iekd_keras.layers.BatchNormalization``: Keras's weights and
    maths)."""
    return BatchNormalization(momentum=BATCH_NORM_MOMENTUM, epsilon=BATCH_NORM_EPSILON, name=name)(
        x
    )


def relu(x, name):
    """ReLU as a named layer."""
    return keras.layers.ReLU(name=name)(x)


def stage_output(x, stage):
    """Marks the output of stage ``stage`` with a parameter-free layer named ``"stage{stage}"``.

    The identity sits on the main path (the next stage reads it), so that the tap belongs to the
    model's graph and :func:`iekd_keras.models.with_taps` can expose it; it adds no weights.
    """
    return keras.layers.Identity(name=f"stage{stage}")(x)


def residual_stages(x, widths, strides, blocks_per_stage, block, prefix="stage"):
    """Stacks stages of blocks: stage s (from 1) has ``blocks_per_stage[s - 1]`` blocks of
    ``widths[s - 1]`` channels, the first with stride ``strides[s - 1]``, the others 1; block i
    (from 1) is ``block(x, planes, strides, f"{prefix}{s}_block{i}")``; each stage ends with
    :func:`stage_output`.

    Example:
        >>> x = residual_stages(x, (16, 32, 64), (1, 2, 2), (3, 3, 3), basic_block)
    """
    stages = zip(widths, strides, blocks_per_stage, strict=True)
    for stage, (planes, stage_strides, count) in enumerate(stages, 1):
        for index in range(1, count + 1):
            block_strides = stage_strides if index == 1 else 1
            x = block(x, planes, block_strides, f"{prefix}{stage}_block{index}")
        x = stage_output(x, stage)
    return x


def features_output(x):
    """Marks the last feature map before global average pooling as the layer ``"features"``."""
    return keras.layers.Identity(name="features")(x)


def classifier_head(features, num_classes, kernel_initializer=None, bias_initializer=None):
    """Global average pooling followed by a dense layer that returns logits.

    The defaults are the CIFAR ResNet's: a Kaiming-normal fan-in kernel and ``nn.Linear``'s
    uniform bias (``pytorch_default_bias``). Pass fresh initializers to change them.

    Example:
        >>> logits = classifier_head(features, 10, bias_initializer="zeros")
    """
    channels = features.shape[-1]
    pooled = keras.layers.GlobalAveragePooling2D(name="avg_pool")(features)
    return keras.layers.Dense(
        num_classes,
        kernel_initializer=kernel_initializer or kaiming_normal("fan_in"),
        bias_initializer=bias_initializer or pytorch_default_bias(channels),
        name="logits",
    )(pooled)


def model_inputs(input_shape, num_classes, builder):
    """The ``"images"`` input of a backbone, after checking ``num_classes`` and ``input_shape``."""
    check_num_classes(num_classes, builder)
    check_input_shape(input_shape, builder)
    return keras.Input(shape=tuple(input_shape), name="images")


def check_num_classes(num_classes, builder):
    """Raise a ValueError unless ``num_classes`` is a positive integer."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"{builder}: num_classes must be a positive integer; got {num_classes!r}.")


def check_input_shape(input_shape, builder):
    """Raise a ValueError unless ``input_shape`` is ``(height, width, channels)``."""
    if not isinstance(input_shape, (tuple, list)) or len(input_shape) != 3:
        raise ValueError(
            f"{builder}: input_shape must be a channels-last (height, width, channels) tuple, "
            f"e.g. (32, 32, 3); got {input_shape!r}."
        )
