"""FeatureSplit: channel bookkeeping, the stored random permutation, and errors."""

import keras
import numpy as np
import pytest
from keras import ops

from iekd_keras.layers import FeatureSplit

pytestmark = pytest.mark.backend_agnostic

FEATURES = np.arange(2 * 2 * 2 * 6, dtype="float32").reshape(2, 2, 2, 6)


def test_natural_split_takes_first_half():
    inheritance, exploration = FeatureSplit()(FEATURES)
    np.testing.assert_array_equal(ops.convert_to_numpy(inheritance), FEATURES[..., :3])
    np.testing.assert_array_equal(ops.convert_to_numpy(exploration), FEATURES[..., 3:])


def test_ratio_sets_inheritance_channels():
    inheritance, exploration = FeatureSplit(ratio=0.34)(FEATURES)
    assert inheritance.shape[-1] == 2 and exploration.shape[-1] == 4


def test_random_split_is_a_seeded_numpy_permutation():
    layer = FeatureSplit(mode="random", seed=3)
    inheritance, exploration = layer(FEATURES)
    permutation = np.random.default_rng(3).permutation(6)
    np.testing.assert_array_equal(ops.convert_to_numpy(layer.permutation), permutation)
    np.testing.assert_array_equal(ops.convert_to_numpy(inheritance), FEATURES[..., permutation[:3]])
    np.testing.assert_array_equal(ops.convert_to_numpy(exploration), FEATURES[..., permutation[3:]])
    assert not layer.permutation.trainable


def test_random_permutation_survives_keras_save_and_load(tmp_path):
    inputs = keras.Input((2, 2, 6))
    outputs = FeatureSplit(mode="random", seed=None, name="split")(inputs)
    model = keras.Model(inputs, list(outputs))
    saved = ops.convert_to_numpy(model.get_layer("split").permutation)
    model.save(tmp_path / "split.keras")
    restored = keras.saving.load_model(tmp_path / "split.keras")
    # seed=None would draw a fresh permutation: only the stored weight can bring it back.
    np.testing.assert_array_equal(
        ops.convert_to_numpy(restored.get_layer("split").permutation), saved
    )
    for got, want in zip(restored(FEATURES), model(FEATURES), strict=True):
        np.testing.assert_array_equal(ops.convert_to_numpy(got), ops.convert_to_numpy(want))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mode": "half"}, "mode='half' is not a split mode"),
        ({"ratio": 1.0}, "ratio=1.0 must lie strictly between 0 and 1"),
        ({"ratio": 0}, "ratio=0 must lie strictly between 0 and 1"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FeatureSplit(**kwargs)


def test_too_few_channels_to_split():
    with pytest.raises(ValueError, match="feature map of 1 channels cannot be split"):
        FeatureSplit()(np.ones((1, 2, 2, 1), "float32"))
