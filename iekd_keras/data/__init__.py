"""tf.data pipelines: the offline digits default, tfds CIFAR-10/100 and ImageNet, image folders."""

from iekd_keras.data.batch_augmentation import build_augmentation_layers
from iekd_keras.data.image_data import ImageData
from iekd_keras.data.imagenet import ImageNetData
from iekd_keras.data.registry import DATASETS, load_dataset
from iekd_keras.data.sources import load_cifar, load_digits, load_image_folder
from iekd_keras.data.tf_dataset_data import TfDatasetData

__all__ = [
    "DATASETS",
    "build_augmentation_layers",
    "ImageData",
    "ImageNetData",
    "TfDatasetData",
    "load_cifar",
    "load_dataset",
    "load_digits",
    "load_image_folder",
]
