"""Stage 1: the teacher auto-encoder trains by reconstruction while the teacher stays frozen."""

import keras
import numpy as np
import pytest
from keras import ops

from iekd_keras import CoupledWeightDecaySGD, FactorAutoencoderTrainer

from .tiny_models import tiny_batches

pytestmark = pytest.mark.backend_agnostic


def test_l1_reconstruction_golden_value(teacher):
    images, _ = tiny_batches(8)
    trainer = FactorAutoencoderTrainer(teacher, factor_channels=4)
    trainer.compile(optimizer=CoupledWeightDecaySGD(0.1))
    logs = trainer.evaluate(images, batch_size=8, verbose=0, return_dict=True)
    features = ops.convert_to_numpy(teacher(images, training=False)[1])
    _, reconstruction = trainer.autoencoder(features, training=False)
    expected = np.mean(np.abs(ops.convert_to_numpy(reconstruction) - features))
    assert logs["reconstruction_loss"] == pytest.approx(expected, rel=1e-5)
    assert logs["loss"] == logs["reconstruction_loss"]


@pytest.mark.parametrize(
    "reconstruction, numpy_form",
    [
        ("mse", lambda error: np.mean(error**2)),
        ("rms", lambda error: np.sqrt(np.mean(error**2))),  # over the whole batch at once
    ],
)
def test_squared_options_are_mse_and_rms(teacher, reconstruction, numpy_form):
    images, _ = tiny_batches(8)
    trainer = FactorAutoencoderTrainer(teacher, factor_channels=4, reconstruction=reconstruction)
    terms, _ = trainer.compute_terms(images, None, training=False)
    features = ops.convert_to_numpy(teacher(images, training=False)[1])
    reconstruction = ops.convert_to_numpy(trainer.autoencoder(features, training=False)[1])
    np.testing.assert_allclose(
        float(terms["loss"]), numpy_form(reconstruction - features), rtol=1e-5
    )


def test_trains_autoencoder_only_and_loss_falls(teacher):
    images, _ = tiny_batches(32)
    teacher_before = [ops.convert_to_numpy(v).copy() for v in teacher.weights]
    trainer = FactorAutoencoderTrainer(teacher, factor_channels=4)
    trainer.compile(optimizer=CoupledWeightDecaySGD(0.05), run_eagerly=True)
    history = trainer.fit(images, batch_size=16, epochs=4, verbose=0)
    losses = history.history["reconstruction_loss"]
    assert losses[-1] < losses[0]
    for before, after in zip(teacher_before, teacher.weights, strict=True):
        np.testing.assert_array_equal(before, ops.convert_to_numpy(after))
    assert {id(v) for v in trainer.trainable_variables} == {
        id(v) for v in trainer.autoencoder.trainable_variables
    }


def test_traced_fit_and_round_trip(teacher, tmp_path):
    images, _ = tiny_batches(16)
    trainer = FactorAutoencoderTrainer(teacher, factor_channels=4)
    trainer.compile(optimizer=CoupledWeightDecaySGD(0.05))
    history = trainer.fit(images, batch_size=8, epochs=1, verbose=0)
    assert set(history.history) == {"loss", "reconstruction_loss"}
    trainer.save(tmp_path / "stage1.keras")
    restored = keras.saving.load_model(tmp_path / "stage1.keras")
    np.testing.assert_allclose(
        ops.convert_to_numpy(restored(images)), ops.convert_to_numpy(trainer(images)), rtol=1e-6
    )


def test_unknown_reconstruction_is_refused(teacher):
    with pytest.raises(ValueError, match="reconstruction='l3' is not supported"):
        FactorAutoencoderTrainer(teacher, reconstruction="l3")
    with pytest.raises(ValueError, match="reconstruction='l2' was renamed: choose 'mse'"):
        FactorAutoencoderTrainer(teacher, reconstruction="l2")
