"""The offline digits dataset and the deterministic in-memory training pipeline."""

import numpy as np
import pytest

from iekd_keras.data import ImageData, load_digits


@pytest.fixture(scope="module")
def digits():
    return load_digits(image_size=16)


def test_real_digits_split(digits):
    assert digits.input_shape == (16, 16, 1) and digits.num_classes == 10
    assert (len(digits.train_images), len(digits.test_images)) == (1438, 359)
    assert digits.train_images.min() >= 0 and digits.train_images.max() <= 255
    assert set(np.unique(digits.train_labels)) == set(range(10))
    again = load_digits(image_size=16)
    np.testing.assert_array_equal(again.test_labels, digits.test_labels)
    other = load_digits(image_size=16, split_seed=1)
    assert not np.array_equal(other.test_labels, digits.test_labels)


def test_training_batches_are_normalised_and_augmented(digits):
    images, labels = next(iter(digits.train_dataset(batch_size=1438, seed=0, epochs=1)))
    assert images.shape == (1438, 16, 16, 1) and images.dtype.name == "float32"
    assert labels.dtype.name == "int32"
    assert abs(float(np.mean(images))) < 0.1 and 0.8 < float(np.std(images)) < 1.2
    # The epoch is a permutation of the training set ...
    np.testing.assert_array_equal(np.sort(labels), np.sort(digits.train_labels))
    # ... and crops move pixels: no augmented image equals its normalised original.
    normalised = digits.normalize(digits.train_images).numpy()
    augmented = images.numpy()
    matches = [
        np.any(np.all(np.isclose(normalised, a, atol=1e-6), axis=(1, 2, 3))) for a in augmented
    ]
    assert np.mean(matches) < 0.5


def test_test_batches_are_not_augmented(digits):
    images, labels = next(iter(digits.test_dataset(batch_size=400)))
    np.testing.assert_allclose(images.numpy(), digits.normalize(digits.test_images).numpy())
    np.testing.assert_array_equal(labels.numpy(), digits.test_labels)


def test_resumed_epoch_replays_the_same_batches(digits):
    steps = digits.steps_per_epoch(64)
    full = [x.numpy() for x, _ in digits.train_dataset(64, seed=5, epochs=3)]
    resumed = [x.numpy() for x, _ in digits.train_dataset(64, seed=5, epochs=3, start_epoch=2)]
    assert len(full) == 3 * steps and len(resumed) == steps
    for got, want in zip(resumed, full[2 * steps :], strict=True):
        np.testing.assert_array_equal(got, want)
    # Different epochs and different seeds see different orders.
    assert not np.array_equal(full[0], full[steps])
    other_seed = next(iter(digits.train_dataset(64, seed=6, epochs=1)))[0].numpy()
    assert not np.array_equal(other_seed, full[0])


def test_with_index_yields_example_indices(digits):
    (images, indices), labels = next(iter(digits.train_dataset(32, 0, 1, with_index=True)))
    np.testing.assert_array_equal(labels.numpy(), digits.train_labels[indices.numpy()])


def test_invalid_data_is_refused():
    with pytest.raises(ValueError, match="'empty' train split is empty"):
        ImageData(
            "empty",
            np.zeros((0, 4, 4, 1)),
            np.zeros(0),
            np.zeros((1, 4, 4, 1)),
            np.zeros(1),
            10,
            (0.5,),
            (0.2,),
        )
    with pytest.raises(ValueError, match="test_fraction=1.5 must lie strictly between"):
        load_digits(test_fraction=1.5)
