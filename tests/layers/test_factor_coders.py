"""FactorEncoder and FactorAutoencoder: structure, initialisation and serialisation."""

import keras
import numpy as np
import pytest
from keras import ops

from iekd_keras.layers import FactorAutoencoder, FactorEncoder

pytestmark = pytest.mark.backend_agnostic

FEATURES = np.random.default_rng(0).normal(size=(4, 8, 8, 16)).astype("float32")


def test_encoder_structure_matches_released_coder():
    encoder = FactorEncoder(8)
    assert encoder(FEATURES).shape == (4, 8, 8, 8)
    kernels = [conv.kernel.shape for conv in encoder.convs]
    assert kernels == [(3, 3, 16, 16), (3, 3, 16, 8), (3, 3, 8, 8)]
    assert all(not conv.use_bias for conv in encoder.convs)
    assert all(norm.momentum == 0.9 and norm.epsilon == 1e-5 for norm in encoder.norms)
    slopes = [encoder.input_activation.negative_slope]
    slopes += [activation.negative_slope for activation in encoder.activations]
    assert slopes == [0.1] * 4
    # Trainable: three bias-free convs plus BatchNorm gamma/beta.
    trainable = sum(int(np.prod(v.shape)) for v in encoder.trainable_weights)
    assert trainable == 16 * 16 * 9 + 16 * 8 * 9 + 8 * 8 * 9 + 2 * (16 + 8 + 8)


def test_encoder_init_is_untruncated_he_normal_fan_out():
    keras.utils.set_random_seed(1)
    encoder = FactorEncoder(64)
    encoder.build((None, 8, 8, 64))
    kernel = ops.convert_to_numpy(encoder.convs[1].kernel)
    expected_std = np.sqrt(2.0 / (3 * 3 * 64))
    assert kernel.std() == pytest.approx(expected_std, rel=0.03)
    # A truncated normal never exceeds two standard deviations; the untruncated one does.
    assert np.abs(kernel).max() > 3 * expected_std


def test_leading_activation_keeps_negative_slope():
    encoder = FactorEncoder(4)
    negative = -np.ones((1, 1, 1, 4), "float32")
    np.testing.assert_allclose(ops.convert_to_numpy(encoder.input_activation(negative)), -0.1)


def test_autoencoder_shapes_and_mirrored_decoder():
    autoencoder = FactorAutoencoder(8)
    factor, reconstruction = autoencoder(FEATURES)
    assert factor.shape == (4, 8, 8, 8)
    assert reconstruction.shape == FEATURES.shape
    assert [c.kernel.shape for c in autoencoder.decoder.convs] == [
        (3, 3, 8, 8),
        (3, 3, 8, 16),
        (3, 3, 16, 16),
    ]
    np.testing.assert_allclose(
        ops.convert_to_numpy(autoencoder.encoder(FEATURES)), ops.convert_to_numpy(factor)
    )


@pytest.mark.parametrize("layer", [FactorEncoder(8), FactorAutoencoder(8)], ids=["enc", "ae"])
def test_keras_save_and_load_round_trip(layer, tmp_path):
    inputs = keras.Input((8, 8, 16))
    model = keras.Model(inputs, layer(inputs))
    model.save(tmp_path / "coder.keras")
    restored = keras.saving.load_model(tmp_path / "coder.keras")
    for got, want in zip(
        keras.tree.flatten(restored(FEATURES)), keras.tree.flatten(model(FEATURES)), strict=True
    ):
        np.testing.assert_allclose(ops.convert_to_numpy(got), ops.convert_to_numpy(want))


def test_invalid_filters():
    with pytest.raises(ValueError, match="filters=0 must be a positive integer"):
        FactorEncoder(0)


@pytest.mark.parametrize("layer_class", [FactorEncoder, FactorAutoencoder])
def test_untrainable_from_config_stays_untrainable_after_build(layer_class):
    layer = layer_class(4, trainable=False)
    layer.build((None, 4, 4, 8))
    assert layer.trainable_variables == []
    assert len(layer.non_trainable_variables) > 0
