"""The CIFAR ResNet of He et al. (2016) as a two-output functional Keras model."""

import functools

import keras

from iekd_keras.layers.initializers import kaiming_normal, pytorch_default_kernel
from iekd_keras.models import _building_blocks as blocks

# (stem, stage 1, stage 2, stage 3) channels: RepDistiller's ``num_filters``.
_DEFAULT_WIDTHS = (16, 16, 32, 64)
_STAGE_STRIDES = (1, 2, 2)
_SHORTCUTS = ("A", "B")
# Fan mode of every convolution and a factory of the classifier kernel's initializer.
_INITIALIZATIONS = {
    # _weights_init of the IE-KD authors' model/resnet.py: kaiming_normal_ (fan-in) on the
    # convolutions and on the linear weight.
    "iekd": ("fan_in", functools.partial(kaiming_normal, "fan_in")),
    # ResNet.__init__ of RepDistiller's models/resnet.py: kaiming_normal_(mode="fan_out") on the
    # convolutions; the linear layer keeps nn.Linear's default.
    "repdistiller": ("fan_out", pytorch_default_kernel),
}


def _option_a_shortcut(x, planes):
    """Parameter-free shortcut: keep every second pixel, zero-pad planes // 4 channels per side.

    The subsampling is a 1x1 max pooling of stride 2, bit-identical to ``x[:, ::2, ::2, :]`` in
    values and gradients (a 1x1 window holds one pixel; both keep ceil(size / 2) rows and
    columns) but run by the pooling kernels rather than StridedSlice and its scatter gradient.
    """
    pad = planes // 4
    subsampled = keras.ops.max_pool(x, pool_size=1, strides=2, padding="valid")
    return keras.ops.pad(subsampled, [[0, 0], [0, 0], [0, 0], [pad, pad]])


def _basic_block(x, planes, strides, prefix, shortcut, fan_mode):
    in_planes = x.shape[-1]
    out = blocks.conv3x3(x, planes, strides, name=f"{prefix}_conv1", fan_mode=fan_mode)
    out = blocks.batch_norm(out, name=f"{prefix}_bn1")
    out = blocks.relu(out, name=f"{prefix}_relu1")
    out = blocks.conv3x3(out, planes, 1, name=f"{prefix}_conv2", fan_mode=fan_mode)
    out = blocks.batch_norm(out, name=f"{prefix}_bn2")

    if strides == 1 and in_planes == planes:
        residual = x
    elif shortcut == "A":
        residual = _option_a_shortcut(x, planes)
    else:
        residual = blocks.conv1x1(
            x, planes, strides, name=f"{prefix}_shortcut_conv", fan_mode=fan_mode
        )
        residual = blocks.batch_norm(residual, name=f"{prefix}_shortcut_bn")

    out = keras.layers.Add(name=f"{prefix}_add")([out, residual])
    return blocks.relu(out, name=f"{prefix}_relu2")


def _check_widths(widths, shortcut):
    if (
        not isinstance(widths, (tuple, list))
        or len(widths) != 4
        or not all(isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in widths)
    ):
        raise ValueError(
            "cifar_resnet: widths must be four positive integers (stem, stage 1, stage 2, "
            f"stage 3), e.g. (16, 16, 32, 64); got widths={widths!r}."
        )
    stem, first, second, third = widths
    if shortcut == "A" and not (
        stem == first and second == 2 * first and third == 2 * second and first % 2 == 0
    ):
        raise ValueError(
            f"cifar_resnet: shortcut='A' cannot change widths={tuple(widths)!r}: its zero-padding "
            "only doubles an even channel count at the stride-2 stages, so it needs "
            "(w, w, 2 * w, 4 * w) with w even, e.g. (16, 16, 32, 64); use shortcut='B'."
        )


def _default_name(depth, widths, shortcut):
    name = f"resnet{depth}"
    if tuple(widths) != _DEFAULT_WIDTHS:
        name += "_widths_" + "_".join(str(w) for w in widths)
    return name + ("b" if shortcut == "B" else "")


def cifar_resnet(
    depth,
    num_classes=10,
    input_shape=(32, 32, 3),
    shortcut="A",
    name=None,
    widths=_DEFAULT_WIDTHS,
    initialization="iekd",
):
    """Build the CIFAR ResNet of He et al. (2016) with outputs ``[logits, features]``.

    The stem is conv3x3(``widths[0]``)-BN-ReLU, followed by three stages of ``(depth - 2) / 6``
    basic blocks (conv3x3-BN-ReLU-conv3x3-BN, plus shortcut, then ReLU) with ``widths[1:]``
    channels (16, 32 and 64 by default) and strides 1, 2 and 2, then global average pooling and
    a dense layer. ``features`` is the last block's final ReLU (layer ``"features"``), i.e. the
    map that global average pooling reads: 8x8x64 for a 32x32 input. Logits have no softmax.
    Stage taps: parameter-free layers ``"stage1"``, ``"stage2"`` and ``"stage3"`` hold the
    output of each stage (its last block's final ReLU: 32x32x16, 16x16x32 and 8x8x64 for a
    32x32 input; ``"stage3"`` equals ``features``), for
    :func:`~iekd_keras.models.with_taps`.
    Batch-norm settings and padding follow PyTorch.

    With ``shortcut="B"`` the network is, layer for layer, ``ResNet`` of ``models/resnet.py``
    in HobbitLong/RepDistiller (whose ``num_filters`` are ``widths``; its ``resnet8x4`` and
    ``resnet32x4`` use ``(32, 64, 128, 256)``, so that stage 1 starts with a projection too),
    except that the pooling is global where RepDistiller's ``AvgPool2d(8)`` assumes a 32x32
    input.

    Args:
        depth: Total depth; ``(depth - 2) % 6 == 0`` and ``depth >= 8`` (e.g. 20, 56, 110).
        num_classes: Number of logits.
        input_shape: Channels-last ``(height, width, channels)`` of one image.
        shortcut: ``"A"`` for the parameter-free shortcut (subsample and zero-pad channels)
            or ``"B"`` for a 1x1 convolution plus batch norm, used where the shape changes.
        name: Model name; defaults to ``"resnet{depth}"`` (with a ``"b"`` suffix for "B" and
            the widths when they are not the default ones).
        widths: Channels of the stem and of the three stages.
        initialization: ``"iekd"`` (``_weights_init`` of ``model/resnet.py`` in the IE-KD
            authors' code: Kaiming-normal fan-in convolutions and dense kernel, ``nn.Linear``'s
            uniform bias) or ``"repdistiller"`` (RepDistiller's ``ResNet.__init__``:
            Kaiming-normal fan-out convolutions, ``nn.Linear``'s default kernel and bias).
            Batch norms start at weight 1 and bias 0 in both.

    Returns:
        A functional ``keras.Model`` mapping images to ``[logits, features]``.

    Example:
        >>> model = cifar_resnet(20, num_classes=100)
        >>> logits, features = model(images)  # (batch, 100), (batch, 8, 8, 64)
        >>> x4 = cifar_resnet(8, 100, shortcut="B", widths=(32, 64, 128, 256))
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
    _check_widths(widths, shortcut_key)
    if initialization not in _INITIALIZATIONS:
        raise ValueError(
            f"cifar_resnet: unknown initialization={initialization!r}; expected one of "
            f"{sorted(_INITIALIZATIONS)}."
        )
    fan_mode, classifier_kernel = _INITIALIZATIONS[initialization]
    inputs = blocks.model_inputs(input_shape, num_classes, "cifar_resnet")
    blocks_per_stage = (depth - 2) // 6
    if name is None:
        name = _default_name(depth, widths, shortcut_key)

    x = blocks.conv3x3(inputs, widths[0], 1, name="stem_conv", fan_mode=fan_mode)
    x = blocks.batch_norm(x, name="stem_bn")
    x = blocks.relu(x, name="stem_relu")

    stage_widths = tuple(widths[1:])
    x = blocks.residual_stages(
        x,
        stage_widths,
        _STAGE_STRIDES,
        (blocks_per_stage,) * len(stage_widths),
        functools.partial(_basic_block, shortcut=shortcut_key, fan_mode=fan_mode),
    )
    features = blocks.features_output(x)

    logits = blocks.classifier_head(features, num_classes, kernel_initializer=classifier_kernel())
    return keras.Model(inputs=inputs, outputs=[logits, features], name=name)
