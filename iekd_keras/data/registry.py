"""Datasets by name, as configs refer to them."""

import difflib

import keras

from iekd_keras.data.imagenet import ImageNetData
from iekd_keras.data.sources import load_cifar, load_digits, load_image_folder
from iekd_keras.distribute.strategies import hide_gpus_from_tensorflow

DATASETS = ("digits", "cifar10", "cifar100", "imagenet2012", "image_folder")


def load_dataset(config):
    """Builds the dataset a `config.data` block names.

    Keys, read as given (a run's config has every key of `base_config().data`): `name` (one
    of DATASETS), `image_size` (digits, imagenet2012, image_folder), `data_dir` (tfds
    datasets), `manual_dir` (imagenet2012), `directory` (image_folder). On JAX it first hides
    the GPUs from TensorFlow, which then only feeds the pipelines (evaluation and export load
    data without a strategy).

    Example:
        >>> load_dataset(quickstart.get_config().data).input_shape
        (16, 16, 1)
    """
    if keras.backend.backend() == "jax":
        hide_gpus_from_tensorflow()
    name = config.name
    if name == "digits":
        return load_digits(image_size=config.image_size)
    if name in ("cifar10", "cifar100"):
        return load_cifar(name, data_dir=config.data_dir)
    if name == "imagenet2012":
        return ImageNetData(
            data_dir=config.data_dir, manual_dir=config.manual_dir, image_size=config.image_size
        )
    if name == "image_folder":
        return load_image_folder(config.directory, image_size=config.image_size)
    close = difflib.get_close_matches(str(name), DATASETS, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"Unknown dataset {name!r}; expected one of {list(DATASETS)}.{hint}")
