"""Zoos of networks from other code bases, by the names those code bases give them.

``REPDISTILLER`` holds the 22 CIFAR networks of HobbitLong/RepDistiller under the keys of its
``models/__init__.py`` ``model_dict`` (the names its scripts and checkpoints use). Each entry
is a :class:`ZooEntry`: a builder ``builder(num_classes=100, input_shape=(32, 32, 3),
name=None)`` returning a functional model with outputs ``[logits, features]`` and stage taps
``"stage1"``, ``"stage2"``, ... at RepDistiller's ``is_feat`` maps ``f1``, ``f2``, ...; and
``keras_layer_name``, the map from the reference network's ``state_dict`` module paths to the
Keras layers (for :func:`iekd_keras.models.pytorch_import.load_pytorch_state`).

=================================================  ===========================================
RepDistiller file                                  archs
=================================================  ===========================================
``models/resnet.py``                               ``resnet8`` ... ``resnet110``,
                                                   ``resnet8x4``, ``resnet32x4``
``models/resnetv2.py``                             ``ResNet50``
``models/wrn.py``                                  ``wrn_16_1``, ``wrn_16_2``, ``wrn_40_1``,
                                                   ``wrn_40_2``
``models/vgg.py``                                  ``vgg8`` ... ``vgg19`` (the ``_bn`` ones)
``models/mobilenetv2.py``                          ``MobileNetV2`` (``mobile_half``)
``models/ShuffleNetv1.py``, ``ShuffleNetv2.py``    ``ShuffleV1``, ``ShuffleV2``
=================================================  ===========================================

:func:`iekd_keras.models.get_model` builds them as ``"repdistiller/<arch>"``
(case-insensitive), named ``"repdistiller_<arch in lower case>"``.

Example:
    >>> entry = REPDISTILLER["resnet32x4"]
    >>> teacher = entry.builder(num_classes=100)
    >>> entry.keras_layer_name("layer1.0.downsample.0")
    'stage1_block1_shortcut_conv'
"""

from collections.abc import Callable
from typing import NamedTuple

from iekd_keras.models import repdistiller_mobilenetv2 as _mobilenet
from iekd_keras.models import repdistiller_resnet as _resnet
from iekd_keras.models import repdistiller_shufflenet as _shufflenet
from iekd_keras.models import repdistiller_vgg as _vgg
from iekd_keras.models import repdistiller_wrn as _wrn


class ZooEntry(NamedTuple):
    """A network of a zoo: its Keras builder and its PyTorch module path -> Keras layer map.

    Example:
        >>> from iekd_keras.models.repdistiller_vgg import keras_layer_name, vgg8
        >>> entry = ZooEntry(vgg8, keras_layer_name)
        >>> model = entry.builder(num_classes=10)
    """

    builder: Callable
    keras_layer_name: Callable


REPDISTILLER = {
    "resnet8": ZooEntry(_resnet.resnet8, _resnet.keras_layer_name),
    "resnet14": ZooEntry(_resnet.resnet14, _resnet.keras_layer_name),
    "resnet20": ZooEntry(_resnet.resnet20, _resnet.keras_layer_name),
    "resnet32": ZooEntry(_resnet.resnet32, _resnet.keras_layer_name),
    "resnet44": ZooEntry(_resnet.resnet44, _resnet.keras_layer_name),
    "resnet56": ZooEntry(_resnet.resnet56, _resnet.keras_layer_name),
    "resnet110": ZooEntry(_resnet.resnet110, _resnet.keras_layer_name),
    "resnet8x4": ZooEntry(_resnet.resnet8x4, _resnet.keras_layer_name),
    "resnet32x4": ZooEntry(_resnet.resnet32x4, _resnet.keras_layer_name),
    "ResNet50": ZooEntry(_resnet.resnet50, _resnet.keras_layer_name),
    "wrn_16_1": ZooEntry(_wrn.wrn_16_1, _wrn.keras_layer_name),
    "wrn_16_2": ZooEntry(_wrn.wrn_16_2, _wrn.keras_layer_name),
    "wrn_40_1": ZooEntry(_wrn.wrn_40_1, _wrn.keras_layer_name),
    "wrn_40_2": ZooEntry(_wrn.wrn_40_2, _wrn.keras_layer_name),
    "vgg8": ZooEntry(_vgg.vgg8, _vgg.keras_layer_name),
    "vgg11": ZooEntry(_vgg.vgg11, _vgg.keras_layer_name),
    "vgg13": ZooEntry(_vgg.vgg13, _vgg.keras_layer_name),
    "vgg16": ZooEntry(_vgg.vgg16, _vgg.keras_layer_name),
    "vgg19": ZooEntry(_vgg.vgg19, _vgg.keras_layer_name),
    "MobileNetV2": ZooEntry(_mobilenet.mobilenetv2_half, _mobilenet.keras_layer_name),
    "ShuffleV1": ZooEntry(_shufflenet.shufflenet_v1, _shufflenet.keras_layer_name),
    "ShuffleV2": ZooEntry(_shufflenet.shufflenet_v2, _shufflenet.keras_layer_name),
}

# Every zoo by name: get_model("<zoo>/<arch>") builds ZOO[zoo][arch].
ZOO = {"repdistiller": REPDISTILLER}


def zoo_names():
    """Every ``"<zoo>/<arch>"`` name, archs spelt as their zoo spells them.

    Example:
        >>> "repdistiller/ResNet50" in zoo_names()
        True
    """
    return tuple(f"{zoo}/{arch}" for zoo, entries in ZOO.items() for arch in entries)


def find_zoo_entry(name):
    """``(zoo, arch, ZooEntry)`` of a ``"<zoo>/<arch>"`` name, case-insensitive, with ``zoo``
    and ``arch`` spelt as the zoo spells them; None when no zoo holds the name.

    Example:
        >>> find_zoo_entry("RepDistiller/resnet50")[:2]
        ('repdistiller', 'ResNet50')
    """
    zoo_key, _, arch_key = str(name).strip().lower().partition("/")
    for zoo, entries in ZOO.items():
        if zoo.lower() != zoo_key:
            continue
        for arch, entry in entries.items():
            if arch.lower() == arch_key:
                return zoo, arch, entry
    return None
