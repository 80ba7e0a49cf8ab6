"""Files saved before the library built its own BatchNormalization and pooled option-A shortcut
(Keras's BatchNormalization, the strided slice `x[:, ::2, ::2, :]`) still load: a `.keras`
file as it is, its `.weights.h5` into the models built now, and the other way round.

The old format is built here by the old factories, swapped in for the duration of a build."""

import importlib

import keras
import numpy as np
import pytest
from keras import ops

from iekd_keras.layers import BatchNormalization, FactorEncoder
from iekd_keras.layers import factor_encoder as factor_encoder_module
from iekd_keras.models import _building_blocks as blocks

pytestmark = pytest.mark.backend_agnostic

cifar_resnet_module = importlib.import_module("iekd_keras.models.cifar_resnet")


def old_batch_norm(x, name):
    return keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name)(x)


def old_pytorch_batch_norm(name, synchronized=False):
    return keras.layers.BatchNormalization(
        momentum=0.9, epsilon=1e-5, synchronized=synchronized, name=name
    )


def old_option_a_shortcut(x, planes):
    pad = planes // 4
    return ops.pad(x[:, ::2, ::2, :], [[0, 0], [0, 0], [0, 0], [pad, pad]])


@pytest.fixture
def old_factories(monkeypatch):
    """While active, the library builds its models as before (Keras's BatchNormalization, the
    strided-slice shortcut)."""
    monkeypatch.setattr(blocks, "batch_norm", old_batch_norm)
    monkeypatch.setattr(cifar_resnet_module, "_option_a_shortcut", old_option_a_shortcut)
    monkeypatch.setattr(factor_encoder_module, "pytorch_batch_norm", old_pytorch_batch_norm)
    return monkeypatch


def randomise(model, seed):
    """Random weights, moving variances positive, so that every weight matters."""
    rng = np.random.default_rng(seed)
    values = []
    for weight in model.weights:
        value = rng.normal(0.0, 0.2, weight.shape)
        if weight.path.endswith("moving_variance"):
            value = np.abs(value) + 0.5
        values.append(value.astype("float32"))
    model.set_weights(values)


def batch_norms(model):
    return [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]


def images(shape=(4, 32, 32, 3)):
    return np.random.default_rng(5).normal(size=shape).astype("float32")


def assert_same_outputs(actual_model, expected_model, x, atol=1e-5):
    """Equal outputs in inference, then in training (which moves both models' statistics)."""
    for training in (False, True):
        actual = actual_model(x, training=training)
        expected = expected_model(x, training=training)
        for a, e in zip(keras.tree.flatten(actual), keras.tree.flatten(expected), strict=True):
            np.testing.assert_allclose(
                ops.convert_to_numpy(a), ops.convert_to_numpy(e), rtol=1e-5, atol=atol
            )


def test_resnet_saved_with_keras_batch_norm_and_sliced_shortcut_loads(tmp_path, old_factories):
    old = cifar_resnet_module.cifar_resnet(8, shortcut="A")
    old_factories.undo()
    randomise(old, 0)
    assert all(type(layer) is keras.layers.BatchNormalization for layer in batch_norms(old))
    old.save(tmp_path / "old.keras")
    old.save_weights(tmp_path / "old.weights.h5")

    # The .keras file loads as it was saved: Keras's layer, the slice, the same outputs.
    restored = keras.saving.load_model(tmp_path / "old.keras")
    assert all(type(layer) is keras.layers.BatchNormalization for layer in batch_norms(restored))
    x = images()
    np.testing.assert_array_equal(
        ops.convert_to_numpy(restored(x)[0]), ops.convert_to_numpy(old(x)[0])
    )

    # Its weights load into the model built now, with the same paths and the same outputs.
    new = cifar_resnet_module.cifar_resnet(8, shortcut="A")
    assert all(type(layer) is BatchNormalization for layer in batch_norms(new))
    assert [w.path for w in new.weights] == [w.path for w in old.weights]
    assert [layer.name for layer in new.layers] == [layer.name for layer in old.layers]
    new.load_weights(tmp_path / "old.weights.h5")
    assert_same_outputs(new, old, x)

    # And the other way round: weights saved now load into a model of the old format.
    randomise(new, 1)
    new.save_weights(tmp_path / "new.weights.h5")
    restored.load_weights(tmp_path / "new.weights.h5")
    assert_same_outputs(restored, new, x)


def test_factor_encoder_weights_load_across_the_batch_norm_classes(tmp_path, old_factories):
    def encoder_model():
        inputs = keras.Input((4, 4, 8))
        return keras.Model(inputs, FactorEncoder(3, name="encoder")(inputs))

    old = encoder_model()
    old_factories.undo()
    randomise(old, 2)
    old.save_weights(tmp_path / "old.weights.h5")
    old.save(tmp_path / "old.keras")
    x = images((2, 4, 4, 8))
    # The encoder builds its norms itself: an old .keras file loads into the new layer.
    restored = keras.saving.load_model(tmp_path / "old.keras")
    assert all(type(layer) is BatchNormalization for layer in batch_norms(restored))
    assert_same_outputs(restored, old, x)

    new = encoder_model()
    assert all(type(layer) is BatchNormalization for layer in batch_norms(new))
    assert [w.path for w in new.weights] == [w.path for w in old.weights]
    old.load_weights(tmp_path / "old.weights.h5")  # back to the saved moving statistics
    new.load_weights(tmp_path / "old.weights.h5")
    assert_same_outputs(new, old, x)
