"""The real tensorflow-datasets loading code, run on tfds's mock data (no download)."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from iekd_keras.data import ImageNetData, load_cifar, load_dataset
from iekd_keras.data.sources import CIFAR_STATISTICS


@pytest.mark.parametrize("name, classes", [("cifar10", 10), ("cifar100", 100)])
def test_cifar_through_tfds(name, classes):
    with tfds.testing.mock_data(num_examples=24):
        data = load_cifar(name)
    assert data.input_shape == (32, 32, 3) and data.num_classes == classes
    assert data.train_images.dtype == np.uint8 and len(data.train_images) == 24
    assert data.padding == 4 and data.flip
    mean, std = CIFAR_STATISTICS[name]
    np.testing.assert_allclose(data.mean, np.array(mean) / 255)
    np.testing.assert_allclose(data.std, np.array(std) / 255)
    images, labels = next(iter(data.train_dataset(8, seed=0, epochs=1)))
    assert images.shape == (8, 32, 32, 3) and images.dtype.name == "float32"
    assert labels.numpy().min() >= 0 and labels.numpy().max() < classes
    test_images, _ = next(iter(data.test_dataset(24)))
    np.testing.assert_allclose(test_images.numpy(), data.normalize(data.test_images).numpy())


def test_imagenet_through_tfds():
    with tfds.testing.mock_data(num_examples=6):
        data = ImageNetData(image_size=32, shuffle_buffer=4)
        train_images, train_labels = next(iter(data.train_dataset(3, seed=0, epochs=2)))
        test_images, _ = next(iter(data.test_dataset(3)))
        replay = next(iter(data.train_dataset(3, seed=0, epochs=2)))[0]
    assert train_images.shape == (3, 32, 32, 3) and test_images.shape == (3, 32, 32, 3)
    assert train_labels.numpy().max() < 1000
    np.testing.assert_allclose(replay.numpy(), train_images.numpy())


def test_unknown_dataset_lists_the_valid_ones():
    import ml_collections

    with pytest.raises(ValueError, match=r"Unknown dataset 'cifar1'.*Did you mean 'cifar10'"):
        load_dataset(ml_collections.ConfigDict({"name": "cifar1"}))
