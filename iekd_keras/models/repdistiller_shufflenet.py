"""RepDistiller's CIFAR ShuffleNet V1 and V2 (``ShuffleV1``, ``ShuffleV2``) as two-output
functional Keras models.

Every layer with tensors is named after its PyTorch module path in RepDistiller's
``models/ShuffleNetv1.py`` / ``models/ShuffleNetv2.py`` with ``"."`` replaced by ``"_"``
(``layer2.0.conv3`` -> ``layer2_0_conv3``), except the classifier ``linear``, which is the layer
``"logits"`` as in every backbone of the library. Neither reference file initialises its
weights, so these models start from PyTorch's defaults.
"""

import keras

from iekd_keras.layers.channel_shuffle import ChannelShuffle
from iekd_keras.layers.feature_split import FeatureSplit
from iekd_keras.layers.grouped_conv2d import GroupedConv2D
from iekd_keras.layers.initializers import pytorch_default_bias, pytorch_default_kernel
from iekd_keras.models import _building_blocks as blocks
from iekd_keras.models.pytorch_import import dotted_path_to_layer_name

_STEM_CHANNELS = 24
# ``ShuffleV1``: output channels and blocks of the three layers, and the groups.
_V1_OUT_CHANNELS = (240, 480, 960)
_V1_BLOCKS = (4, 8, 4)
_V1_GROUPS = 3
# ``ShuffleV2`` (``net_size=1``): output channels of the three layers and of the last 1x1 conv,
# and the basic blocks after each layer's down-sampling block.
_V2_OUT_CHANNELS = (116, 232, 464)
_V2_LAST_CHANNELS = 1024
_V2_BLOCKS = (3, 7, 3)
_V2_SHUFFLE_GROUPS = 2


def keras_layer_name(torch_module_path):
    """The Keras layer holding the tensors of a module of RepDistiller's ``ShuffleNet`` or
    ``ShuffleNetV2``.

    Example:
        >>> keras_layer_name("layer2.0.conv3"), keras_layer_name("linear")
        ('layer2_0_conv3', 'logits')
    """
    if torch_module_path == "linear":
        return "logits"
    return dotted_path_to_layer_name(torch_module_path)


def _conv1x1(x, filters, name, groups=1):
    """1x1 convolution without bias (grouped when ``groups > 1``, in PyTorch's layout: each
    group of input channels feeds its own group of output channels), PyTorch's default init."""
    return GroupedConv2D(
        filters,
        kernel_size=1,
        groups=groups,
        use_bias=False,
        kernel_initializer=pytorch_default_kernel(),
        name=name,
    )(x)


def _depthwise3x3(x, strides, name):
    """3x3 depthwise convolution without bias, one pixel of padding on every side, PyTorch's
    default init: U(-1/3, 1/3), as its ``(channels, 1, 3, 3)`` weight has fan-in 9 (Keras's
    ``(3, 3, channels, 1)`` kernel puts those 9 in its fan-out)."""
    x, padding = blocks.pytorch_padding(x, strides, name)
    return keras.layers.DepthwiseConv2D(
        3,
        strides=strides,
        padding=padding,
        use_bias=False,
        depthwise_initializer=keras.initializers.VarianceScaling(
            scale=1.0 / 3.0, mode="fan_out", distribution="uniform"
        ),
        name=name,
    )(x)


def _stem(inputs):
    """``relu(bn1(conv1(x)))``: a 1x1 convolution to 24 channels at full resolution."""
    x = _conv1x1(inputs, _STEM_CHANNELS, name="conv1")
    return blocks.relu(blocks.batch_norm(x, name="bn1"), name="relu1")


def _head(features, num_classes):
    """Global average pooling (the reference's 4x4 average pool of the 4x4 map of a 32x32 input)
    and the dense ``linear`` layer, with PyTorch's default init."""
    channels = features.shape[-1]
    return blocks.classifier_head(
        features,
        num_classes,
        kernel_initializer=pytorch_default_kernel(),
        bias_initializer=pytorch_default_bias(channels),
    )


def _v1_bottleneck(x, out_channels, strides, groups, prefix):
    """ShuffleNet V1's ``Bottleneck``: grouped 1x1-BN-ReLU, channel shuffle, depthwise
    3x3-BN-ReLU, grouped 1x1-BN; then ReLU of the sum with the input (stride 1) or of the
    concatenation ``[branch, shortcut]`` with a padded 3x3 stride-2 average pool of the input
    (stride 2, the padding zeros counted in the average as PyTorch's ``count_include_pad``)."""
    in_channels = x.shape[-1]
    middle = out_channels // 4
    # As in the reference, the first 1x1 of the block that reads the 24-channel stem is dense.
    first_groups = 1 if in_channels == _STEM_CHANNELS else groups
    y = _conv1x1(x, middle, name=f"{prefix}_conv1", groups=first_groups)
    y = blocks.relu(blocks.batch_norm(y, name=f"{prefix}_bn1"), name=f"{prefix}_relu1")
    if first_groups > 1:
        y = ChannelShuffle(first_groups, name=f"{prefix}_shuffle1")(y)
    y = _depthwise3x3(y, strides, name=f"{prefix}_conv2")
    y = blocks.relu(blocks.batch_norm(y, name=f"{prefix}_bn2"), name=f"{prefix}_relu2")
    y = _conv1x1(y, out_channels, name=f"{prefix}_conv3", groups=groups)
    y = blocks.batch_norm(y, name=f"{prefix}_bn3")
    if strides == 1:
        y = keras.layers.Add(name=f"{prefix}_add")([y, x])
    else:
        shortcut = keras.layers.ZeroPadding2D(1, name=f"{prefix}_shortcut_0_pad")(x)
        shortcut = keras.layers.AveragePooling2D(
            3, strides=strides, padding="valid", name=f"{prefix}_shortcut_0"
        )(shortcut)
        y = keras.layers.Concatenate(name=f"{prefix}_concat")([y, shortcut])
    return blocks.relu(y, name=f"{prefix}_relu")


def shufflenet_v1(num_classes=100, input_shape=(32, 32, 3), name=None):
    """Build RepDistiller's ``ShuffleV1`` (``models/ShuffleNetv1.py``, 3 groups) with outputs
    ``[logits, features]``.

    Layer for layer as there: a 1x1 stem conv to 24 channels-BN-ReLU at full resolution; three
    layers of 4, 8 and 4 bottlenecks ending with 240, 480 and 960 channels, each layer opening
    with a stride-2 bottleneck whose branch adds the channels missing to its input (the
    concatenation ``[branch, shortcut]``); every 1x1 conv grouped by 3 except the first of the
    first bottleneck; a channel shuffle after each grouped first 1x1. ``features`` (layer
    ``"features"``) is the last layer's output, 4x4x960 for a 32x32 input; global average pooling
    and a dense layer give logits without softmax. Initialisation is PyTorch's default (the
    reference sets none).

    Stage taps (parameter-free layers) hold RepDistiller's ``is_feat`` f1..f3, the ReLU outputs
    of the three layers: ``"stage1"`` 16x16x240, ``"stage2"`` 8x8x480, ``"stage3"`` 4x4x960 for a
    32x32 input. Layers are named after the PyTorch modules (:func:`keras_layer_name`).

    Args:
        num_classes: Number of logits.
        input_shape: Channels-last ``(height, width, channels)`` of one image.
        name: Model name; defaults to ``"repdistiller_shufflev1"``.

    Returns:
        A functional ``keras.Model`` mapping images to ``[logits, features]``.

    Example:
        >>> model = shufflenet_v1(num_classes=100)
        >>> logits, features = model(images)  # (batch, 100), (batch, 4, 4, 960)
    """
    inputs = blocks.model_inputs(input_shape, num_classes, "shufflenet_v1")
    x = _stem(inputs)
    stages = zip(_V1_OUT_CHANNELS, _V1_BLOCKS, strict=True)
    for stage, (out_channels, count) in enumerate(stages, 1):
        for index in range(count):
            prefix = f"layer{stage}_{index}"
            if index == 0:
                x = _v1_bottleneck(x, out_channels - x.shape[-1], 2, _V1_GROUPS, prefix)
            else:
                x = _v1_bottleneck(x, out_channels, 1, _V1_GROUPS, prefix)
        x = blocks.stage_output(x, stage)
    features = blocks.features_output(x)
    logits = _head(features, num_classes)
    return keras.Model(
        inputs=inputs, outputs=[logits, features], name=name or "repdistiller_shufflev1"
    )


def _v2_down_block(x, out_channels, prefix):
    """ShuffleNet V2's ``DownBlock``: two stride-2 branches of ``out_channels // 2`` channels,
    left depthwise 3x3-BN, 1x1-BN-ReLU; right 1x1-BN-ReLU, depthwise 3x3-BN, 1x1-BN-ReLU;
    concatenated ``[left, right]`` and shuffled in 2 groups."""
    half = out_channels // 2
    left = _depthwise3x3(x, 2, name=f"{prefix}_conv1")
    left = blocks.batch_norm(left, name=f"{prefix}_bn1")
    left = _conv1x1(left, half, name=f"{prefix}_conv2")
    left = blocks.relu(blocks.batch_norm(left, name=f"{prefix}_bn2"), name=f"{prefix}_relu2")
    right = _conv1x1(x, half, name=f"{prefix}_conv3")
    right = blocks.relu(blocks.batch_norm(right, name=f"{prefix}_bn3"), name=f"{prefix}_relu3")
    right = _depthwise3x3(right, 2, name=f"{prefix}_conv4")
    right = blocks.batch_norm(right, name=f"{prefix}_bn4")
    right = _conv1x1(right, half, name=f"{prefix}_conv5")
    right = blocks.relu(blocks.batch_norm(right, name=f"{prefix}_bn5"), name=f"{prefix}_relu5")
    x = keras.layers.Concatenate(name=f"{prefix}_concat")([left, right])
    return ChannelShuffle(_V2_SHUFFLE_GROUPS, name=f"{prefix}_shuffle")(x)


def _v2_basic_block(x, prefix):
    """ShuffleNet V2's ``BasicBlock``: the first half of the channels passes, the second half
    goes through 1x1-BN-ReLU, depthwise 3x3-BN, 1x1-BN-ReLU; concatenated ``[passed, branch]``
    and shuffled in 2 groups."""
    passed, branch = FeatureSplit(mode="natural", ratio=0.5, name=f"{prefix}_split")(x)
    channels = passed.shape[-1]
    y = _conv1x1(branch, channels, name=f"{prefix}_conv1")
    y = blocks.relu(blocks.batch_norm(y, name=f"{prefix}_bn1"), name=f"{prefix}_relu1")
    y = _depthwise3x3(y, 1, name=f"{prefix}_conv2")
    y = blocks.batch_norm(y, name=f"{prefix}_bn2")
    y = _conv1x1(y, channels, name=f"{prefix}_conv3")
    y = blocks.relu(blocks.batch_norm(y, name=f"{prefix}_bn3"), name=f"{prefix}_relu3")
    x = keras.layers.Concatenate(name=f"{prefix}_concat")([passed, y])
    return ChannelShuffle(_V2_SHUFFLE_GROUPS, name=f"{prefix}_shuffle")(x)


def shufflenet_v2(num_classes=100, input_shape=(32, 32, 3), name=None):
    """Build RepDistiller's ``ShuffleV2`` (``models/ShuffleNetv2.py``, ``net_size=1``) with
    outputs ``[logits, features]``.

    Layer for layer as there: a 1x1 stem conv to 24 channels-BN-ReLU at full resolution; three
    layers of 116, 232 and 464 channels, each a stride-2 down-sampling block followed by 3, 7
    and 3 basic blocks (split in halves, one half through 1x1 / depthwise 3x3 / 1x1, concatenated
    and shuffled in 2 groups); a 1x1 conv to 1024 channels-BN-ReLU, which is ``features`` (layer
    ``"features"``, 4x4x1024 for a 32x32 input); global average pooling and a dense layer give
    logits without softmax. Initialisation is PyTorch's default (the reference sets none).

    Stage taps (parameter-free layers) hold RepDistiller's ``is_feat`` f1..f3, the shuffled
    outputs of the three layers: ``"stage1"`` 16x16x116, ``"stage2"`` 8x8x232, ``"stage3"``
    4x4x464 for a 32x32 input. Layers are named after the PyTorch modules
    (:func:`keras_layer_name`).

    Args:
        num_classes: Number of logits.
        input_shape: Channels-last ``(height, width, channels)`` of one image.
        name: Model name; defaults to ``"repdistiller_shufflev2"``.

    Returns:
        A functional ``keras.Model`` mapping images to ``[logits, features]``.

    Example:
        >>> model = shufflenet_v2(num_classes=100)
        >>> logits, features = model(images)  # (batch, 100), (batch, 4, 4, 1024)
    """
    inputs = blocks.model_inputs(input_shape, num_classes, "shufflenet_v2")
    x = _stem(inputs)
    stages = zip(_V2_OUT_CHANNELS, _V2_BLOCKS, strict=True)
    for stage, (out_channels, count) in enumerate(stages, 1):
        x = _v2_down_block(x, out_channels, f"layer{stage}_0")
        for index in range(1, count + 1):
            x = _v2_basic_block(x, f"layer{stage}_{index}")
        x = blocks.stage_output(x, stage)
    x = _conv1x1(x, _V2_LAST_CHANNELS, name="conv2")
    x = blocks.relu(blocks.batch_norm(x, name="bn2"), name="relu2")
    features = blocks.features_output(x)
    logits = _head(features, num_classes)
    return keras.Model(
        inputs=inputs, outputs=[logits, features], name=name or "repdistiller_shufflev2"
    )
