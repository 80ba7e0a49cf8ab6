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


def crop_flip_candidates(image, padding):
    """Every image pad_crop_flip can make from `image`, keyed by (row offset, column offset,
    flipped): reflect padding, then a crop back to the input size, then maybe a flip."""
    height, width = image.shape[:2]
    padded = np.pad(image, [(padding, padding), (padding, padding), (0, 0)], mode="reflect")
    candidates = {}
    for dy in range(2 * padding + 1):
        for dx in range(2 * padding + 1):
            crop = padded[dy : dy + height, dx : dx + width]
            candidates[(dy, dx, False)] = crop
            candidates[(dy, dx, True)] = crop[:, ::-1]
    return candidates


def crops_and_flips_by_index(data, batches):
    """For each epoch's single batch, the (offset, flip) that produced each example's image."""
    mean, std = np.asarray(data.mean), np.asarray(data.std)
    drawn = []
    for (images, indices), _ in batches:
        epoch = {}
        for augmented, index in zip(images.numpy(), indices.numpy(), strict=True):
            candidates = crop_flip_candidates(data.train_images[index], data.padding)
            matches = [
                key
                for key, candidate in candidates.items()
                if np.allclose((candidate / 255 - mean) / std, augmented, atol=1e-5)
            ]
            assert len(matches) == 1, (index, matches)
            epoch[int(index)] = matches[0]
        drawn.append(epoch)
    return drawn


def test_each_epoch_draws_new_crops_and_flips_and_a_resumed_epoch_replays_them():
    rng = np.random.default_rng(0)
    count = 12
    # Noise images: every crop and flip of every example is a distinct image.
    images = rng.integers(0, 256, size=(count, 6, 6, 3)).astype("float32")
    data = ImageData(
        "noise",
        images,
        np.zeros(count, "int64"),
        images[:1],
        np.zeros(1, "int64"),
        2,
        (0.5, 0.5, 0.5),
        (0.25, 0.25, 0.25),
        padding=2,
    )
    full = list(data.train_dataset(count, seed=3, epochs=3, with_index=True))
    assert len(full) == 3  # one batch per epoch
    epochs = crops_and_flips_by_index(data, full)
    assert all(sorted(epoch) == list(range(count)) for epoch in epochs)
    # 50 (offset, flip) pairs: the same example keeps its pair by chance only 1 time in 50.
    for earlier, later in ((0, 1), (1, 2)):
        redrawn = [epochs[earlier][i] != epochs[later][i] for i in range(count)]
        assert sum(redrawn) >= count - 2, (epochs[earlier], epochs[later])
    # Resuming at epoch 1 replays that epoch's crops and flips exactly.
    resumed = list(data.train_dataset(count, seed=3, epochs=2, start_epoch=1, with_index=True))
    assert crops_and_flips_by_index(data, resumed) == [epochs[1]]
    (replayed, _), _ = resumed[0]
    (original, _), _ = full[1]
    np.testing.assert_array_equal(replayed.numpy(), original.numpy())
