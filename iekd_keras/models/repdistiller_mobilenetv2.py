"""RepDistiller's CIFAR MobileNetV2 (``mobile_half``) as a two-output functional Keras model.

Every layer with tensors is named after its PyTorch module path in RepDistiller's
``models/mobilenetv2.py`` with ``"."`` replaced by ``"_"`` (``blocks.2.0.conv.3`` ->
``blocks_2_0_conv_3``), except the classifier ``classifier.0``, which is the layer ``"logits"``
as in every backbone of the library.
"""

import keras

from iekd_keras.layers.initializers import kaiming_normal
from iekd_keras.models import _building_blocks as blocks
from iekd_keras.models.pytorch_import import dotted_path_to_layer_name

# (output channels before the width multiplier, blocks, first stride) of the seven groups of
# inverted residual blocks; the first group expands by 1, the others by the net's expansion.
_GROUPS = (
    (16, 1, 1),
    (24, 2, 1),
    (32, 3, 2),
    (64, 4, 2),
    (96, 3, 1),
    (160, 3, 2),
    (320, 1, 1),
)
_STEM_CHANNELS = 32
_LAST_CHANNELS = 1280
# Groups after which RepDistiller's forward keeps a feature map (f1..f4 of ``is_feat``).
_TAPPED_GROUPS = (1, 2, 4, 6)
# ``mobile_half``: expansion 6, width multiplier 0.5 (the 1280 last channels are not scaled).
_HALF_EXPANSION = 6
_HALF_WIDTH = 0.5
# ``_initialize_weights``: linear weight N(0, 0.01), zero bias.
_CLASSIFIER_STDDEV = 0.01


def keras_layer_name(torch_module_path):
    """The Keras layer holding the tensors of a module of RepDistiller's ``MobileNetV2``.

    Example:
        >>> keras_layer_name("blocks.2.0.conv.3"), keras_layer_name("classifier.0")
        ('blocks_2_0_conv_3', 'logits')
    """
    if torch_module_path == "classifier.0":
        return "logits"
    return dotted_path_to_layer_name(torch_module_path)


def _conv_unit(x, prefix, index, filters, kernel_size=1, strides=1, depthwise=False, relu=True):
    """Convolution ``{prefix}_{index}``, batch norm ``{prefix}_{index + 1}`` and, if ``relu``,
    ReLU ``{prefix}_{index + 2}``: three consecutive entries of a PyTorch ``nn.Sequential``.

    Initialisation is ``_initialize_weights``'s: normal with std ``sqrt(2 / n)``,
    ``n = kh * kw * out_channels`` of the PyTorch weight. For a full convolution that is
    Kaiming-normal over Keras's fan-out; a depthwise convolution's PyTorch ``out_channels`` are
    its channels, which Keras counts in the fan-in of its ``(kh, kw, channels, 1)`` kernel.
    """
    name = f"{prefix}_{index}"
    x, padding = blocks.pytorch_padding(x, strides, name) if kernel_size == 3 else (x, "valid")
    if depthwise:
        layer = keras.layers.DepthwiseConv2D(
            kernel_size,
            strides=strides,
            padding=padding,
            use_bias=False,
            depthwise_initializer=kaiming_normal("fan_in"),
            name=name,
        )
    else:
        layer = keras.layers.Conv2D(
            filters,
            kernel_size,
            strides=strides,
            padding=padding,
            use_bias=False,
            kernel_initializer=kaiming_normal("fan_out"),
            name=name,
        )
    x = blocks.batch_norm(layer(x), name=f"{prefix}_{index + 1}")
    return blocks.relu(x, name=f"{prefix}_{index + 2}") if relu else x


def _inverted_residual(x, out_channels, strides, expansion, prefix):
    """``InvertedResidual``: 1x1 expansion-BN-ReLU, depthwise 3x3-BN-ReLU, 1x1-BN (linear), plus
    the input when the stride is 1 and the channels do not change."""
    in_channels = x.shape[-1]
    hidden = in_channels * expansion
    y = _conv_unit(x, f"{prefix}_conv", 0, hidden)
    y = _conv_unit(y, f"{prefix}_conv", 3, hidden, kernel_size=3, strides=strides, depthwise=True)
    y = _conv_unit(y, f"{prefix}_conv", 6, out_channels, relu=False)
    if strides == 1 and in_channels == out_channels:
        y = keras.layers.Add(name=f"{prefix}_add")([x, y])
    return y


def mobilenetv2_half(num_classes=100, input_shape=(32, 32, 3), name=None):
    """Build RepDistiller's ``mobile_half`` (``models/mobilenetv2.py``: MobileNetV2 with
    expansion 6 and width 0.5) with outputs ``[logits, features]``.

    Layer for layer as there: a 3x3 stride-2 stem conv (16 channels)-BN-ReLU; seven groups of
    inverted residual blocks with 8, 12, 16, 32, 48, 80, 160 output channels, 1, 2, 3, 4, 3, 3,
    1 blocks and first strides 1, 1, 2, 2, 1, 2, 1 (expansion 1 in the first group, 6 after),
    each block a 1x1 expansion-BN-ReLU, a depthwise 3x3-BN-ReLU and a linear 1x1-BN, with an
    identity shortcut when its stride is 1 and its channels do not change; a 1x1 conv to 1280
    channels-BN-ReLU (``features``, layer ``"features"``, 2x2x1280 for a 32x32 input); global
    average pooling (the reference's ``AvgPool2d`` covers the whole map for its input sizes,
    multiples of 32) and a dense layer giving logits without softmax. Strided 3x3 convolutions
    pad one pixel on every side, as PyTorch does. Initialisation is the reference's: convolutions
    normal with std ``sqrt(2 / (kh * kw * out_channels))``, batch norms weight 1 and bias 0,
    the dense layer weight N(0, 0.01) and bias 0.

    Stage taps (parameter-free layers) hold the maps of RepDistiller's ``is_feat`` f1..f4: the
    outputs of block groups 2, 3, 5 and 7, ``"stage1"`` 16x16x12, ``"stage2"`` 8x8x16,
    ``"stage3"`` 4x4x48 and ``"stage4"`` 2x2x160 for a 32x32 input (these groups end with the
    linear 1x1-BN, so there is no activation to follow). Layers are named after the PyTorch
    modules (:func:`keras_layer_name`).

    Args:
        num_classes: Number of logits.
        input_shape: Channels-last ``(height, width, channels)`` of one image.
        name: Model name; defaults to ``"repdistiller_mobilenetv2"``.

    Returns:
        A functional ``keras.Model`` mapping images to ``[logits, features]``.

    Example:
        >>> model = mobilenetv2_half(num_classes=100)
        >>> logits, features = model(images)  # (batch, 100), (batch, 2, 2, 1280)
    """
    inputs = blocks.model_inputs(input_shape, num_classes, "mobilenetv2_half")
    x = _conv_unit(inputs, "conv1", 0, int(_STEM_CHANNELS * _HALF_WIDTH), 3, strides=2)
    stage = 1
    for group, (channels, count, strides) in enumerate(_GROUPS):
        expansion = 1 if group == 0 else _HALF_EXPANSION
        for index in range(count):
            x = _inverted_residual(
                x,
                int(channels * _HALF_WIDTH),
                strides if index == 0 else 1,
                expansion,
                f"blocks_{group}_{index}",
            )
        if group in _TAPPED_GROUPS:
            x = blocks.stage_output(x, stage)
            stage += 1
    x = _conv_unit(x, "conv2", 0, _LAST_CHANNELS)
    features = blocks.features_output(x)
    logits = blocks.classifier_head(
        features,
        num_classes,
        kernel_initializer=keras.initializers.RandomNormal(stddev=_CLASSIFIER_STDDEV),
        bias_initializer="zeros",
    )
    return keras.Model(
        inputs=inputs, outputs=[logits, features], name=name or "repdistiller_mobilenetv2"
    )
