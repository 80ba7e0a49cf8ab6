"""RepDistiller's CIFAR VGGs with batch norm (``models/vgg.py`` of HobbitLong/RepDistiller).

``vgg8``, ``vgg11``, ``vgg13``, ``vgg16`` and ``vgg19`` are RepDistiller's ``vgg8_bn`` ...
``vgg19_bn`` (the ones its ``model_dict`` builds): five blocks of 3x3 convolutions with bias,
each followed by batch norm and ReLU, with 64, 128, 256, 512 and 512 channels, max pooling
between the blocks and no fully connected layers but the classifier. :func:`keras_layer_name`
maps the ``state_dict`` module paths to the Keras layers.

Example:
    >>> teacher = vgg13(num_classes=100)
    >>> logits, features = teacher(images)  # (batch, 100), (batch, 4, 4, 512)
"""

import re

import keras

from iekd_keras.layers.initializers import kaiming_normal
from iekd_keras.models import _building_blocks as blocks

_BLOCK_WIDTHS = (64, 128, 256, 512, 512)
# Convolutions in each of the five blocks (RepDistiller's configurations S, A, B, D and E).
_CONVS_PER_BLOCK = {
    "vgg8": (1, 1, 1, 1, 1),
    "vgg11": (1, 1, 2, 2, 2),
    "vgg13": (2, 2, 2, 2, 2),
    "vgg16": (2, 2, 3, 3, 3),
    "vgg19": (2, 2, 4, 4, 4),
}
# The max pooling before block 4 applies only to inputs of this height.
_POOL3_INPUT_HEIGHT = 64
# Sequential index of a block's j-th (from 0) convolution and batch norm; a ReLU follows each.
_MODULES_PER_CONV = 3


def _vgg_block(x, block, convs):
    """``convs`` times conv3x3 (with bias)-BN-ReLU; the last ReLU is the one RepDistiller
    applies after the block, so the block's output as it returns it is layer
    ``block{b}_bn{convs}``."""
    for index in range(1, convs + 1):
        x = keras.layers.Conv2D(
            _BLOCK_WIDTHS[block],
            kernel_size=3,
            padding="same",
            kernel_initializer=kaiming_normal("fan_out"),
            bias_initializer="zeros",
            name=f"block{block}_conv{index}",
        )(x)
        x = blocks.batch_norm(x, name=f"block{block}_bn{index}")
        x = blocks.relu(x, name=f"block{block}_relu{index}")
    return x


def _max_pool(x, name):
    return keras.layers.MaxPooling2D(pool_size=2, strides=2, name=name)(x)


def _repdistiller_vgg(arch, num_classes, input_shape, name):
    """The network of :func:`vgg8` and its siblings, with ``_CONVS_PER_BLOCK[arch]``."""
    inputs = blocks.model_inputs(input_shape, num_classes, arch)
    height = input_shape[0]
    if not isinstance(height, int) or isinstance(height, bool):
        raise ValueError(
            f"{arch}: input_shape must fix the image height (max pooling before block 4 "
            f"applies only to {_POOL3_INPUT_HEIGHT}-pixel-high images); got "
            f"input_shape={input_shape!r}."
        )
    convs_per_block = _CONVS_PER_BLOCK[arch]
    x = _vgg_block(inputs, 0, convs_per_block[0])
    x = _max_pool(x, "pool0")
    for block in (1, 2, 3, 4):
        x = _vgg_block(x, block, convs_per_block[block])
        x = blocks.stage_output(x, block)
        if block < 3:
            x = _max_pool(x, f"pool{block}")
        elif block == 3 and height == _POOL3_INPUT_HEIGHT:
            x = _max_pool(x, "pool3")
    features = blocks.features_output(x)
    logits = blocks.classifier_head(
        features,
        num_classes,
        kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
        bias_initializer="zeros",
    )
    return keras.Model(
        inputs=inputs, outputs=[logits, features], name=name or f"repdistiller_{arch}"
    )


def vgg8(num_classes=100, input_shape=(32, 32, 3), name=None):
    """RepDistiller's ``vgg8`` (``vgg8_bn``): one convolution per block.

    Block ``b`` (0 to 4) is conv3x3-BN-ReLU repeated, with 64, 128, 256, 512 and 512
    channels; a 2x2 max pooling follows blocks 0, 1 and 2, and block 3 only for 64x64 inputs
    (RepDistiller's rule); global average pooling of block 4 feeds the dense classifier.
    ``"stage1"`` .. ``"stage4"`` hold blocks 1 to 4 after their ReLU (RepDistiller's ``f1`` ..
    ``f4``: 16x16x128, 8x8x256, 4x4x512 and 4x4x512 for a 32x32 input); ``features`` is
    ``"stage4"``. Initialisation: convolutions Kaiming-normal over the fan-out with zero bias,
    batch norms weight 1 and bias 0, the classifier N(0, 0.01) with zero bias.

    Args:
        num_classes: Number of logits.
        input_shape: Channels-last ``(height, width, channels)`` of one image.
        name: Model name; defaults to ``"repdistiller_vgg8"``.

    Returns:
        A functional ``keras.Model`` mapping images to ``[logits, features]``.

    Example:
        >>> model = vgg8(num_classes=100)
        >>> logits, features = model(images)  # (batch, 100), (batch, 4, 4, 512)
    """
    return _repdistiller_vgg("vgg8", num_classes, input_shape, name)


def vgg11(num_classes=100, input_shape=(32, 32, 3), name=None):
    """RepDistiller's ``vgg11`` (``vgg11_bn``): 1, 1, 2, 2, 2 convolutions per block, else
    as :func:`vgg8`.

    Example:
        >>> model = vgg11(num_classes=100)  # outputs [logits, features]
    """
    return _repdistiller_vgg("vgg11", num_classes, input_shape, name)


def vgg13(num_classes=100, input_shape=(32, 32, 3), name=None):
    """RepDistiller's ``vgg13`` (``vgg13_bn``): 2 convolutions per block, else as
    :func:`vgg8`.

    Example:
        >>> model = vgg13(num_classes=100)  # outputs [logits, features]
    """
    return _repdistiller_vgg("vgg13", num_classes, input_shape, name)


def vgg16(num_classes=100, input_shape=(32, 32, 3), name=None):
    """RepDistiller's ``vgg16`` (``vgg16_bn``): 2, 2, 3, 3, 3 convolutions per block, else
    as :func:`vgg8`.

    Example:
        >>> model = vgg16(num_classes=100)  # outputs [logits, features]
    """
    return _repdistiller_vgg("vgg16", num_classes, input_shape, name)


def vgg19(num_classes=100, input_shape=(32, 32, 3), name=None):
    """RepDistiller's ``vgg19`` (``vgg19_bn``): 2, 2, 4, 4, 4 convolutions per block, else
    as :func:`vgg8`.

    Example:
        >>> model = vgg19(num_classes=100)  # outputs [logits, features]
    """
    return _repdistiller_vgg("vgg19", num_classes, input_shape, name)


_BLOCK_MODULE = re.compile(r"block(?P<block>[0-4])\.(?P<index>\d+)")


def keras_layer_name(torch_module_path):
    """The Keras layer holding the tensors of a module of RepDistiller's VGG.

    Module ``block{b}.{k}`` of the ``nn.Sequential`` block ``b`` is its convolution
    ``k // 3 + 1`` when ``k % 3 == 0`` and that convolution's batch norm when ``k % 3 == 1``;
    ``classifier`` is the dense layer.

    Example:
        >>> keras_layer_name("block2.4")
        'block2_bn2'
    """
    if torch_module_path == "classifier":
        return "logits"
    match = _BLOCK_MODULE.fullmatch(str(torch_module_path))
    if match is not None:
        conv, kind = divmod(int(match["index"]), _MODULES_PER_CONV)
        if kind < 2:
            return f"block{match['block']}_{('conv', 'bn')[kind]}{conv + 1}"
    raise ValueError(
        f"keras_layer_name: {torch_module_path!r} is not a module with tensors of RepDistiller's "
        "VGG; expected 'classifier' or 'block{b}.{k}' with b in 0-4 and k % 3 in (0, 1) (a "
        "convolution or its batch norm), e.g. 'block0.0'."
    )
