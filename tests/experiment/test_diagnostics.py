"""Linear CKA against numpy, its invariances, and the per-epoch logger on a Distiller."""

import numpy as np
import pytest

from iekd_keras import CoupledWeightDecaySGD, Distiller
from iekd_keras.experiment.diagnostics import FactorSimilarityLogger, linear_cka
from iekd_keras.layers import FactorAutoencoder
from tests.distillers.tiny_models import tiny_backbone, tiny_batches

RNG = np.random.default_rng(3)
X = RNG.normal(size=(20, 2, 2, 3))
Y = RNG.normal(size=(20, 12))


def numpy_cka(x, y):
    x = x.reshape(len(x), -1)
    y = y.reshape(len(y), -1)
    x = x - x.mean(0)
    y = y - y.mean(0)
    return np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))


def test_matches_numpy_and_is_invariant():
    assert float(linear_cka(X, Y)) == pytest.approx(numpy_cka(X, Y), rel=1e-4)
    flat = X.reshape(20, -1)
    rotation, _ = np.linalg.qr(RNG.normal(size=(12, 12)))
    assert float(linear_cka(flat, 3.0 * flat @ rotation)) == pytest.approx(1.0, abs=1e-5)
    assert 0.0 <= float(linear_cka(X, Y)) < 1.0


def test_logger_adds_both_similarities():
    teacher = tiny_backbone(channels=8, name="teacher")
    autoencoder = FactorAutoencoder(4)
    autoencoder.build(teacher.outputs[1].shape)
    distiller = Distiller(teacher, tiny_backbone(channels=6, name="student"), autoencoder.encoder)
    distiller.compile(optimizer=CoupledWeightDecaySGD(0.05), run_eagerly=True)
    images, labels = tiny_batches(16)
    history = distiller.fit(
        images, labels, epochs=1, verbose=0, callbacks=[FactorSimilarityLogger(images)]
    )
    for name in ("cka_inheritance", "cka_exploration"):
        assert 0.0 < history.history[name][0] <= 1.0
