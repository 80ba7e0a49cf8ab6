"""Build a backbone from a short name such as ``"resnet56"``, ``"wrn_40_2"``, ``"mobilenet"`` or
``"repdistiller/resnet32x4"``."""

import difflib
import re

from iekd_keras.models.cifar_mobilenet import cifar_mobilenet
from iekd_keras.models.cifar_resnet import cifar_resnet
from iekd_keras.models.imagenet_resnet import imagenet_resnet
from iekd_keras.models.wide_resnet import wide_resnet
from iekd_keras.models.zoo import find_zoo_entry, zoo_names

_RESNET_DEPTHS = (8, 14, 20, 32, 44, 56, 110)
_RESNET_NAMES = tuple(f"resnet{depth}" for depth in _RESNET_DEPTHS) + tuple(
    f"resnet{depth}b" for depth in _RESNET_DEPTHS
)
# torchvision-style ImageNet ResNets (basic blocks); built by imagenet_resnet().
_IMAGENET_RESNET_DEPTHS = (18, 34)
_IMAGENET_RESNET_NAMES = tuple(f"resnet{depth}" for depth in _IMAGENET_RESNET_DEPTHS)
_WRN_PATTERN = "wrn_{depth}_{width}"
_WRN_REGEX = re.compile(r"wrn_(\d+)_(\d+)")
_RESNET_REGEX = re.compile(r"resnet(\d+)(b?)")
# Concrete wide-ResNet names, only used to suggest a close match for a misspelt name.
_WRN_EXAMPLES = ("wrn_16_1", "wrn_16_2", "wrn_40_1", "wrn_40_2", "wrn_28_10")
# A zoo network's builder takes num_classes, input_shape and name only.
_ZOO_KEYWORDS = ("name",)


def available_models():
    """Names accepted by :func:`get_model`, with wide ResNets given as a pattern.

    Returns:
        A tuple of names: ``"resnet{depth}"`` for depths 8, 14, 20, 32, 44, 56 and 110
        (shortcut A), the same with a ``"b"`` suffix (shortcut B), the pattern
        ``"wrn_{depth}_{width}"``, ``"mobilenet"``, the ImageNet ResNets ``"resnet18"`` and
        ``"resnet34"``, and the zoo networks ``"repdistiller/<arch>"``
        (:mod:`iekd_keras.models.zoo`: RepDistiller's 22 networks, archs spelt as its
        ``model_dict``, e.g. ``"repdistiller/ResNet50"``).

    Example:
        >>> "resnet56b" in available_models()
        True
        >>> "repdistiller/resnet32x4" in available_models()
        True
    """
    return _RESNET_NAMES + (_WRN_PATTERN, "mobilenet") + _IMAGENET_RESNET_NAMES + zoo_names()


def _closest_name(key):
    if "/" in key:  # a zoo name: suggest the closest zoo name
        by_lower_name = {name.lower(): name for name in zoo_names()}
        close = difflib.get_close_matches(key, list(by_lower_name), n=1, cutoff=0.6)
        return by_lower_name[close[0]] if close else None
    resnet_match = _RESNET_REGEX.fullmatch(key)
    if resnet_match:  # an unsupported depth: suggest the nearest supported one
        depths = _RESNET_DEPTHS
        if not resnet_match.group(2):  # the ImageNet ResNets have no "b" variant
            depths = tuple(sorted(depths + _IMAGENET_RESNET_DEPTHS))
        depth = min(depths, key=lambda d: abs(d - int(resnet_match.group(1))))
        return f"resnet{depth}{resnet_match.group(2)}"
    candidates = _RESNET_NAMES + _IMAGENET_RESNET_NAMES + _WRN_EXAMPLES + ("mobilenet",)
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.4)
    return close[0] if close else None


def _unknown_name_error(name, key):
    close = _closest_name(key)
    message = (
        f"Unknown model name {name!r}. Valid names (case-insensitive): "
        f"{', '.join(available_models())}; use cifar_resnet() directly for other ResNet depths."
    )
    if close:
        message += f" Did you mean {close!r}?"
    return ValueError(message)


def _build_zoo_model(name, key, num_classes, input_shape, kwargs):
    found = find_zoo_entry(key)
    if found is None:
        raise _unknown_name_error(name, key)
    zoo, arch, entry = found
    refused = sorted(set(kwargs) - set(_ZOO_KEYWORDS))
    if refused:
        raise ValueError(
            f"get_model({name!r}) takes num_classes, input_shape and name only (the zoo's "
            f"network is fixed); got {', '.join(refused)}."
        )
    model_name = kwargs.get("name") or f"{zoo}_{arch.lower()}"
    return entry.builder(num_classes=num_classes, input_shape=input_shape, name=model_name)


def get_model(name, /, num_classes=10, input_shape=(32, 32, 3), **kwargs):
    """Build the backbone called ``name``; it returns ``[logits, features]``.

    Args:
        name: Case-insensitive registry name (positional-only), one of
            :func:`available_models`: e.g. ``"resnet20"`` (shortcut A), ``"resnet56b"``
            (shortcut B), ``"wrn_40_2"`` (WRN-40-2; any valid depth and width),
            ``"mobilenet"``, the ImageNet ResNets ``"resnet18"`` / ``"resnet34"``, or a zoo
            network ``"repdistiller/<arch>"`` (e.g. ``"repdistiller/resnet32x4"``,
            RepDistiller's network layer for layer; see :mod:`iekd_keras.models.zoo`).
        num_classes: Number of logits.
        input_shape: Channels-last ``(height, width, channels)`` of one image. The default
            suits the CIFAR backbones; pass e.g. ``(224, 224, 3)`` for ``"resnet18"``.
        **kwargs: Passed on to the builder, e.g. ``dropout_rate`` for wide ResNets,
            ``width_multiplier`` for MobileNet or ``name`` to override the model name
            (which defaults to the lower-cased registry name, ``"/"`` becoming ``"_"``:
            ``"repdistiller_resnet32x4"``). Zoo networks take ``name`` only.

    Returns:
        A functional ``keras.Model`` with outputs ``[logits, features]``.

    Example:
        >>> teacher = get_model("resnet56", num_classes=100)
        >>> student = get_model("WRN_16_1", num_classes=100)
        >>> zoo_teacher = get_model("repdistiller/resnet32x4", num_classes=100)
    """
    if not isinstance(name, str):
        raise ValueError(f"Model name must be a string; got {name!r}.")
    key = name.strip().lower()
    if "/" in key:
        return _build_zoo_model(name, key, num_classes, input_shape, kwargs)
    kwargs.setdefault("name", key)

    if key in _IMAGENET_RESNET_NAMES:
        depth = _IMAGENET_RESNET_DEPTHS[_IMAGENET_RESNET_NAMES.index(key)]
        return imagenet_resnet(depth, num_classes=num_classes, input_shape=input_shape, **kwargs)

    resnet_match = _RESNET_REGEX.fullmatch(key)
    if resnet_match and key in _RESNET_NAMES:
        if "shortcut" in kwargs:
            raise ValueError(
                f"get_model({name!r}): choose the shortcut with the name suffix "
                "('resnet20' for A, 'resnet20b' for B), not with shortcut=."
            )
        depth = int(resnet_match.group(1))
        shortcut = "B" if resnet_match.group(2) else "A"
        return cifar_resnet(
            depth, num_classes=num_classes, input_shape=input_shape, shortcut=shortcut, **kwargs
        )

    wrn_match = _WRN_REGEX.fullmatch(key)
    if wrn_match:
        depth, width = int(wrn_match.group(1)), int(wrn_match.group(2))
        return wide_resnet(depth, width, num_classes=num_classes, input_shape=input_shape, **kwargs)

    if key == "mobilenet":
        return cifar_mobilenet(num_classes=num_classes, input_shape=input_shape, **kwargs)

    raise _unknown_name_error(name, key)
