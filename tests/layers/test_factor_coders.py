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


def leaky_relu(x, slope=0.1):
    return np.where(x >= 0, x, slope * x)


def conv3x3_same(x, kernel):
    """Cross-correlation with one pixel of zero padding, as Keras' Conv2D(padding="same")."""
    height, width = x.shape[1:3]
    padded = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)])
    return sum(
        padded[:, dy : dy + height, dx : dx + width, :] @ kernel[dy, dx]
        for dy in range(3)
        for dx in range(3)
    )


def encoder_reference(encoder, x, leading_slope=0.1):
    """The encoder's inference-mode output from its own weights, in float64 numpy."""
    x = leaky_relu(x.astype("float64"), leading_slope)
    for conv, norm in zip(encoder.convs, encoder.norms, strict=True):
        gamma, beta, mean, variance = (
            ops.convert_to_numpy(v).astype("float64")
            for v in (norm.gamma, norm.beta, norm.moving_mean, norm.moving_variance)
        )
        x = conv3x3_same(x, ops.convert_to_numpy(conv.kernel).astype("float64"))
        x = leaky_relu((x - mean) / np.sqrt(variance + norm.epsilon) * gamma + beta)
    return x


def test_encoder_output_starts_with_leaky_relu_of_slope_0_1():
    encoder = FactorEncoder(4)
    encoder.build((None, 6, 6, 5))
    rng = np.random.default_rng(3)
    for norm in encoder.norms:  # non-trivial statistics, so every BatchNorm term counts
        channels = norm.gamma.shape[0]
        norm.gamma.assign(rng.uniform(0.5, 1.5, channels).astype("float32"))
        norm.beta.assign(rng.normal(size=channels).astype("float32"))
        norm.moving_mean.assign(rng.normal(size=channels).astype("float32"))
        norm.moving_variance.assign(rng.uniform(0.5, 2.0, channels).astype("float32"))
    x = rng.normal(size=(2, 6, 6, 5)).astype("float32")  # half the inputs are negative
    output = ops.convert_to_numpy(encoder(x, training=False))
    np.testing.assert_allclose(output, encoder_reference(encoder, x), rtol=1e-4, atol=1e-5)
    # Without the leading activation, or with another slope, the output is far from this one.
    for changed in (encoder_reference(encoder, x, 1.0), encoder_reference(encoder, x, 0.2)):
        assert np.abs(changed - output).max() > 0.01


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
