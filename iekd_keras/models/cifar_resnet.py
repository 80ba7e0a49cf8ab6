"""The CIFAR ResNet of He et al. (2016) as a two-output functional Keras model."""

import functools

import keras

from iekd_keras.models import _building_blocks as blocks

_STAGE_WIDTHS = (16, 32, 64)
_STAGE_STRIDES = (1, 2, 2)
_SHORTCUTS = ("A", "B")


def _option_a_shortcut(x, planes):
    """Parameter-free shortcut: keep every second pixel, zero-pad planes // 4 channels per side.

    The subsampling is a 1x1 max pooling of stride 2, bit-identical to ``x[:, ::2, ::2, :]`` in
    values and gradients (a 1x1 window holds one pixel; both keep ceil(size / 2) rows and
    columns) but run by the pooling kernels rather than StridedSlice and its scatter gradient.
    """
    pad = planes // 4
    subsampled = keras.ops.max_pool(x, pool_size=1, strides=2, padding="valid")
    return keras.ops.pad(subsampled, [[0, 0], [0, 0], [0, 0], [pad, pad]])


def _basic_block(x, planes, strides, prefix, shortcut):
    in_planes = x.shape[-1]
    out = blocks.conv3x3(x, planes, strides, name=f"{prefix}_conv1")
    out = blocks.batch_norm(out, name=f"{prefix}_bn1")
    out = blocks.relu(out, name=f"{prefix}_relu1")
    out = blocks.conv3x3(out, planes, 1, name=f"{prefix}_conv2")
    out = blocks.batch_norm(out, name=f"{prefix}_bn2")

    if strides == 1 and in_planes == planes:
        residual = x
    elif shortcut == "A":
        residual = _option_a_shortcut(x, planes)
    else:
        residual = blocks.conv1x1(x, planes, strides, name=f"{prefix}_shortcut_conv")
        residual = blocks.batch_norm(residual, name=f"{prefix}_shortcut_bn")

    out = keras.layers.Add(name=f"{prefix}_add")([out, residual])
    return blocks.relu(out, name=f"{prefix}_relu2")


def cifar_resnet(depth, num_classes=10, input_shape=(32, 32, 3), shortcut="A", name=None):
    """Build the CIFAR ResNet of He et al. (2016) with outputs ``[logits, features]``.

    The stem is conv3x3(16)-BN-ReLU, followed by three stages of ``(depth - 2) / 6``
    basic blocks (conv3x3-BN-ReLU-conv3x3-BN, plus shortcut, then ReLU) with 16, 32 and 64
    channels and strides 1, 2 and 2, then global average pooling and a dense layer.
    ``features`` is the last block's final ReLU (layer ``"features"``), i.e. the map that
    global average pooling reads: 8x8x64 for a 32x32 input. Logits have no softmax.
    Stage taps: parameter-free layers ``"stage1"``, ``"stage2"`` and ``"stage3"`` hold the
    output of each stage (its last block's final ReLU: 32x32x16, 16x16x32 and 8x8x64 for a
    32x32 input; ``"stage3"`` equals ``features``), for
    :func:`~iekd_keras.models.with_taps`.
    Weight initialisation, batch-norm settings and padding follow the PyTorch reference.

    Args:
        depth: Total depth; ``(depth - 2) % 6 == 0`` and ``depth >= 8`` (e.g. 20, 56, 110).
        num_classes: Number of logits.
        input_shape: Channels-last ``(height, width, channels)`` of one image.
        shortcut: ``"A"`` for the parameter-free shortcut (subsample and zero-pad channels)
            or ``"B"`` for a 1x1 convolution plus batch norm, used where the shape changes.
        name: Model name; defaults to ``"resnet{depth}"`` (with a ``"b"`` suffix for "B").

    Returns:
        A functional ``keras.Model`` mapping images to ``[logits, features]``.

    Example:
        >>> model = cifar_resnet(20, num_classes=100)
        >>> logits, features = model(images)  # (batch, 100), (batch, 8, 8, 64)
    """
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(
            f"cifar_resnet: invalid depth={depth!r}; the depth must be an integer with "
            "(depth - 2) % 6 == 0 and depth >= 8, e.g. 8, 20, 32, 44, 56 or 110."
        )
    shortcut_key = shortcut.upper() if isinstance(shortcut, str) else shortcut
    if shortcut_key not in _SHORTCUTS:
        raise ValueError(
            f"cifar_resnet: unknown shortcut={shortcut!r}; expected 'A' (parameter-free "
            "subsample and zero-pad) or 'B' (1x1 convolution and batch norm)."
        )
    inputs = blocks.model_inputs(input_shape, num_classes, "cifar_resnet")
    blocks_per_stage = (depth - 2) // 6
    if name is None:
        name = f"resnet{depth}" + ("b" if shortcut_key == "B" else "")

    x = blocks.conv3x3(inputs, _STAGE_WIDTHS[0], 1, name="stem_conv")
    x = blocks.batch_norm(x, name="stem_bn")
    x = blocks.relu(x, name="stem_relu")

    x = blocks.residual_stages(
        x,
        _STAGE_WIDTHS,
        _STAGE_STRIDES,
        (blocks_per_stage,) * len(_STAGE_WIDTHS),
        functools.partial(_basic_block, shortcut=shortcut_key),
    )
    features = blocks.features_output(x)

    logits = blocks.classifier_head(features, num_classes)
    return keras.Model(inputs=inputs, outputs=[logits, features], name=name)
