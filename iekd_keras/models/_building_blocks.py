"""Private layer factories shared by the CIFAR backbones.

The settings mirror the PyTorch defaults used by the reference implementations, so that a
Keras model trained from scratch starts from the same distributions:

* convolution and dense kernels: Kaiming-normal with fan-in (``kaiming_normal_``),
* dense bias: uniform in ``[-1/sqrt(fan_in), 1/sqrt(fan_in)]`` (``nn.Linear`` default),
* batch normalisation: ``momentum=0.9`` (PyTorch ``momentum=0.1``) and ``epsilon=1e-5``,
* 3x3 convolutions pad one pixel on every side, also when strided.
"""

import math

import keras

BATCH_NORM_MOMENTUM = 0.9
BATCH_NORM_EPSILON = 1e-5


def kaiming_normal():
    """A fresh Kaiming-normal (fan-in, gain sqrt(2)) initializer."""
    return keras.initializers.VarianceScaling(
        scale=2.0, mode="fan_in", distribution="untruncated_normal"
    )


def depthwise_kaiming_normal():
    """Kaiming-normal for a depthwise kernel, whose true fan-in is only kh * kw.

    Keras stores depthwise kernels as ``(kh, kw, channels, multiplier)`` and would count
    ``kh * kw * channels`` as the fan-in; the fan-out axis (the multiplier, 1 here) gives the
    PyTorch value ``kh * kw``.
    """
    return keras.initializers.VarianceScaling(
        scale=2.0, mode="fan_out", distribution="untruncated_normal"
    )


def conv3x3(x, filters, strides, name):
    """3x3 convolution without bias, padded by one pixel on every side (PyTorch style)."""
    if strides == 1:
        padding = "same"
    else:
        x = keras.layers.ZeroPadding2D(padding=1, name=f"{name}_pad")(x)
        padding = "valid"
    return keras.layers.Conv2D(
        filters,
        kernel_size=3,
        strides=strides,
        padding=padding,
        use_bias=False,
        kernel_initializer=kaiming_normal(),
        name=name,
    )(x)


def conv1x1(x, filters, strides, name):
    """1x1 convolution without bias."""
    return keras.layers.Conv2D(
        filters,
        kernel_size=1,
        strides=strides,
        padding="valid",
        use_bias=False,
        kernel_initializer=kaiming_normal(),
        name=name,
    )(x)


def depthwise3x3(x, strides, name):
    """3x3 depthwise convolution without bias, padded by one pixel on every side."""
    if strides == 1:
        padding = "same"
    else:
        x = keras.layers.ZeroPadding2D(padding=1, name=f"{name}_pad")(x)
        padding = "valid"
    return keras.layers.DepthwiseConv2D(
        kernel_size=3,
        strides=strides,
        padding=padding,
        use_bias=False,
        depthwise_initializer=depthwise_kaiming_normal(),
        name=name,
    )(x)


def batch_norm(x, name):
    """Batch normalisation with PyTorch-matching momentum and epsilon."""
    return keras.layers.BatchNormalization(
        momentum=BATCH_NORM_MOMENTUM, epsilon=BATCH_NORM_EPSILON, name=name
    )(x)


def relu(x, name):
    """ReLU as a named layer."""
    return keras.layers.ReLU(name=name)(x)


def stage_output(x, stage):
    """Marks the output of stage ``stage`` with a parameter-free layer named ``"stage{stage}"``.

    The identity sits on the main path (the next stage reads it), so that the tap belongs to the
    model's graph and :func:`iekd_keras.models.with_taps` can expose it; it adds no weights.
    """
    return keras.layers.Identity(name=f"stage{stage}")(x)


def features_output(x):
    """Marks the last feature map before global average pooling as the layer ``"features"``."""
    return keras.layers.Identity(name="features")(x)


def classifier_head(features, num_classes):
    """Global average pooling followed by a dense layer that returns logits."""
    channels = features.shape[-1]
    bound = 1.0 / math.sqrt(channels)
    pooled = keras.layers.GlobalAveragePooling2D(name="avg_pool")(features)
    return keras.layers.Dense(
        num_classes,
        kernel_initializer=kaiming_normal(),
        bias_initializer=keras.initializers.RandomUniform(minval=-bound, maxval=bound),
        name="logits",
    )(pooled)


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
