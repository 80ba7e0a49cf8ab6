"""PyTorch's weight initialisations as Keras initializers, shared by the backbones and the loss
layers so that each network starts from the distribution of the reference file it follows.

Keras counts fans as PyTorch does: a conv kernel ``(kh, kw, cin, cout)`` has fan-in
``kh * kw * cin`` and fan-out ``kh * kw * cout``; a dense kernel ``(in, out)`` has ``in`` and
``out``; a transposed conv kernel ``(kh, kw, out, in)`` has fan-in ``kh * kw * out``, like
PyTorch's ``ConvTranspose2d`` weight.

Example:
    >>> keras.layers.Conv2D(64, 3, kernel_initializer=kaiming_normal("fan_out"))
    >>> keras.layers.Dense(10, kernel_initializer=pytorch_default_kernel(),
    ...                    bias_initializer=pytorch_default_bias(512))
"""

import math

import keras

_FAN_MODES = ("fan_in", "fan_out")


def kaiming_normal(mode="fan_in"):
    """A fresh untruncated Kaiming-normal initializer with gain sqrt(2): std sqrt(2 / fan).

    PyTorch's ``kaiming_normal_(w, mode=mode)`` with ``a=0`` or ``nonlinearity="relu"``.

    Example:
        >>> keras.layers.Conv2D(64, 3, kernel_initializer=kaiming_normal("fan_out"))
    """
    if mode not in _FAN_MODES:
        raise ValueError(f"kaiming_normal: mode must be 'fan_in' or 'fan_out'; got {mode!r}.")
    return keras.initializers.VarianceScaling(
        scale=2.0, mode=mode, distribution="untruncated_normal"
    )


def depthwise_kaiming_normal():
    """Normal with std sqrt(2 / (kh * kw)) for a depthwise kernel: ``dw_conv_init`` of the IE-KD
    authors' ``model/mobilenet.py``, which takes the receptive field ``kh * kw`` alone as the fan.

    Keras stores depthwise kernels as ``(kh, kw, channels, multiplier)``; with multiplier 1 its
    fan-out is exactly ``kh * kw``.

    Example:
        >>> keras.layers.DepthwiseConv2D(3, depthwise_initializer=depthwise_kaiming_normal())
    """
    return keras.initializers.VarianceScaling(
        scale=2.0, mode="fan_out", distribution="untruncated_normal"
    )


def pytorch_default_kernel():
    """PyTorch's default ``nn.Linear`` / ``nn.Conv2d`` weight: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    (``kaiming_uniform_`` with ``a=sqrt(5)``), the fan read from the kernel's shape.

    Example:
        >>> keras.layers.Dense(10, kernel_initializer=pytorch_default_kernel())
    """
    return keras.initializers.VarianceScaling(
        scale=1.0 / 3.0, mode="fan_in", distribution="uniform"
    )


def pytorch_default_bias(fan_in):
    """PyTorch's default ``nn.Linear`` / ``nn.Conv2d`` bias: U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
    with ``fan_in`` the fan-in of the layer's kernel (a bias has no fan of its own).

    Example:
        >>> keras.layers.Dense(10, bias_initializer=pytorch_default_bias(512))
    """
    bound = 1.0 / math.sqrt(fan_in)
    return keras.initializers.RandomUniform(minval=-bound, maxval=bound)
