"""CIFAR backbones returning ``[logits, features]`` from one forward pass.

``features`` is the last feature map before global average pooling (channels-last). ``ZOO``
holds networks of other code bases by their own names (RepDistiller's 22 CIFAR networks as
``ZOO["repdistiller"]``), which :func:`get_model` builds as ``"repdistiller/<arch>"``.
"""

from iekd_keras.models.cifar_mobilenet import cifar_mobilenet
from iekd_keras.models.cifar_resnet import cifar_resnet
from iekd_keras.models.feature_tap import with_feature_output, with_taps
from iekd_keras.models.imagenet_resnet import imagenet_resnet
from iekd_keras.models.registry import available_models, get_model
from iekd_keras.models.wide_resnet import wide_resnet
from iekd_keras.models.zoo import ZOO, ZooEntry

__all__ = [
    "ZOO",
    "ZooEntry",
    "available_models",
    "cifar_mobilenet",
    "cifar_resnet",
    "get_model",
    "imagenet_resnet",
    "wide_resnet",
    "with_feature_output",
    "with_taps",
]
