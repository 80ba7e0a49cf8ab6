"""Private layer factories shared by the backbones.

Each backbone passes the initialisation of its reference file; a factory's defaults are those
of the CIFAR ResNet (``_weights_init`` in ``model/resnet.py`` of the IE-KD authors' code):

* convolution and dense kernels: ``kaiming_normal_`` with fan-in, gain sqrt(2)
  (``kaiming_normal("fan_in")``),
* dense bias: PyTorch's ``nn.Linear`` default, uniform in ``[-1/sqrt(fan_in), 1/sqrt(fan_in)]``,
* batch normalisation: weight 1, bias 0 (the Keras and PyTorch default), ``momentum=0.9``
  (PyTorch ``momentum=0.1``) and ``epsilon=1e-5``,
* 3x3 convolutions pad one pixel on every side, also when strided.
"""

import math

import keras

BATCH_NORM_MOMENTUM = 0.9
BATCH_NORM_EPSILON = 1e-5
_FAN_MODES = ("fan_in", "fan_out")


def kaiming_normal(mode="fan_in"):
    """A fresh untruncated Kaiming-normal initializer with gain sqrt(2): std sqrt(2 / fan).

    PyTorch's ``kaiming_normal_(w, mode=mode)`` with ``a=0`` or ``nonlinearity="relu"``. For a
    Keras conv kernel ``(kh, kw, cin, cout)``, fan-in is ``kh * kw * cin`` and fan-out
    ``kh * kw * cout``, as PyTorch counts them; for a dense kernel ``(in, out)``, ``in`` and
    ``out``.

    Example:
        >>> keras.layers.Conv2D(64, 3, kernel_initializer=kaiming_normal("fan_out"))
    """
    if mode not in _FAN_MODES:
        raise ValueError(f"kaiming_normal: mode must be 'fan_in' or 'fan_out'; got {mode!r}.")
    return keras.initializers.VarianceScaling(
        scale=2.0, mode=mode, distribution="untruncated_normal"
    )


def depthwise_kaiming_normal():
    """Normal with std sqrt(2 / (kh * kw)) for a depthwise kernel: ``dw_conv_init`` of
    ``model/mobilenet.py``, which takes the receptive field ``kh * kw`` alone as the fan.

    Keras stores depthwise kernels as ``(kh, kw, channels, multiplier)``; with multiplier 1 its
    fan-out is exactly ``kh * kw``.

    Example:
        >>> keras.layers.DepthwiseConv2D(3, depthwise_initializer=depthwise_kaiming_normal())
    """
    return keras.initializers.VarianceScaling(
        scale=2.0, mode="fan_out", distribution="untruncated_normal"
    )


def pytorch_linear_uniform(fan_in):
    """PyTorch's default ``nn.Linear`` init of weight and bias: uniform in +-1/sqrt(fan_in).

    For the weight this is ``kaiming_uniform_(a=sqrt(5))``, whose bound
    ``sqrt(6 / ((1 + 5) * fan_in))`` equals the bias bound ``1 / sqrt(fan_in)``.

    Example:
        >>> keras.layers.Dense(10, kernel_initializer=pytorch_linear_uniform(512))
    """
    bound = 1.0 / math.sqrt(fan_in)
    return keras.initializers.RandomUniform(minval=-bound, maxval=bound)


def conv3x3(x, filters, strides, name, fan_mode="fan_in"):
    """3x3 convolution without bias, padded by one pixel on every side (PyTorch style), with a
    Kaiming-normal kernel over ``fan_mode``."""
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


def classifier_head(features, num_classes, kernel_initializer=None, bias_initializer=None):
    """Global average pooling followed by a dense layer that returns logits.

    The defaults are the CIFAR ResNet's: a Kaiming-normal fan-in kernel and ``nn.Linear``'s
    uniform bias (``pytorch_linear_uniform``). Pass fresh initializers to change them.

    Example:
        >>> logits = classifier_head(features, 10, bias_initializer="zeros")
    """
    channels = features.shape[-1]
    pooled = keras.layers.GlobalAveragePooling2D(name="avg_pool")(features)
    return keras.layers.Dense(
        num_classes,
        kernel_initializer=kernel_initializer or kaiming_normal("fan_in"),
        bias_initializer=bias_initializer or pytorch_linear_uniform(channels),
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
