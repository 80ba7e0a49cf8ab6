"""A user's own tf.data datasets go through the same staged run."""

import numpy as np
import pytest
import tensorflow as tf

from iekd_keras.data import TfDatasetData, load_digits


def digits_as_tf_data():
    digits = load_digits(image_size=8)
    train = tf.data.Dataset.from_tensor_slices((digits.train_images, digits.train_labels))
    test = tf.data.Dataset.from_tensor_slices((digits.test_images, digits.test_labels))
    return digits, TfDatasetData(train, test, 10, digits.mean, digits.std, name="own")


def test_batches_epochs_and_normalisation():
    digits, data = digits_as_tf_data()
    assert data.num_train_examples == 1438 and data.input_shape == (8, 8, 1)
    batches = list(data.train_dataset(500, seed=0, epochs=2))
    assert [len(labels) for _, labels in batches] == [500, 500, 438] * 2
    first_epoch = np.concatenate([labels.numpy() for _, labels in batches[:3]])
    np.testing.assert_array_equal(np.sort(first_epoch), np.sort(digits.train_labels))
    assert not np.array_equal(batches[0][1].numpy(), batches[3][1].numpy())
    test_images, _ = next(iter(data.test_dataset(400)))
    np.testing.assert_allclose(test_images.numpy(), digits.normalize(digits.test_images).numpy())


def test_batched_dataset_is_refused():
    digits = load_digits(image_size=8)
    batched = tf.data.Dataset.from_tensor_slices((digits.train_images, digits.train_labels))
    with pytest.raises(ValueError, match="unbatch it first"):
        TfDatasetData(batched.batch(4), batched, 10, digits.mean, digits.std)


def test_train_and_evaluate_accepts_it(tmp_path):
    from iekd_keras.experiment.train import train_and_evaluate
    from tests.experiment.test_train_and_evaluate import tiny_config

    config = tiny_config()
    config.baseline = config.export = False
    _, data = digits_as_tf_data()
    results = train_and_evaluate(config, tmp_path, data=data)
    assert results["dataset"] == "own"
    assert 0 <= results["stages"]["student"]["best_test_accuracy"] <= 1
