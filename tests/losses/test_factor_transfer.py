"""FactorTransfer: golden value, errors, gradients, serialisation, IE-FT in a Distiller."""

import keras
import numpy as np
import pytest
from keras import ops

from iekd_keras.layers import FactorEncoder
from iekd_keras.losses import FactorTransfer
from tests.gradients import gradient_norms

from .helpers import (
    batches,
    make_distiller,
    numpy_normalize_rows,
    tapped_backbone,
    teacher_encoder,
)

pytestmark = pytest.mark.backend_agnostic

RNG = np.random.default_rng(13)
TEACHER_SHAPES = {"logits": (None, 3), "features": (None, 4, 4, 8), "factor": (None, 4, 4, 4)}
STUDENT_SHAPES = {"logits": (None, 3), "features": (None, 4, 4, 6)}


def built(**kwargs):
    term = FactorTransfer(**kwargs)
    term.build(TEACHER_SHAPES, STUDENT_SHAPES)
    return term


@pytest.mark.parametrize("p", [1, 2])
def test_golden_value(p):
    term = built(beta=500.0, p=p)
    assert isinstance(term.translator, FactorEncoder) and term.translator.filters == 4
    features = RNG.normal(size=(3, 4, 4, 6)).astype("float32")
    factor = RNG.normal(size=(3, 4, 4, 4)).astype("float32")
    value = term({"factor": factor}, {"features": features}, {}, training=False)
    translated = ops.convert_to_numpy(term.translator(features, training=False))
    difference = numpy_normalize_rows(translated) - numpy_normalize_rows(factor)
    expected = 500.0 * np.mean(np.abs(difference) ** p) ** (1.0 / p)
    np.testing.assert_allclose(float(value), expected, rtol=1e-5)


def test_missing_factor_and_mismatched_shapes_are_refused():
    no_factor = {k: v for k, v in TEACHER_SHAPES.items() if k != "factor"}
    with pytest.raises(ValueError, match="no 'factor'.*teacher_encoder"):
        FactorTransfer().build(no_factor, STUDENT_SHAPES)
    with pytest.raises(ValueError, match="factor_channels=8 but the teacher factor has 4"):
        built(factor_channels=8)
    small = {**STUDENT_SHAPES, "features": (None, 2, 2, 6)}
    with pytest.raises(ValueError, match="4x4.*2x2"):
        FactorTransfer().build(TEACHER_SHAPES, small)


def test_gradient_reaches_student_and_translator():
    term = built()
    features = keras.Variable(np.abs(RNG.normal(size=(3, 4, 4, 6))).astype("float32"))
    factor = RNG.normal(size=(3, 4, 4, 4)).astype("float32")
    kernels = [conv.kernel for conv in term.translator.convs]
    _, norms = gradient_norms(
        lambda: term({"factor": factor}, {"features": features}, {}), [features, *kernels]
    )
    assert all(norm > 0 for norm in norms)


def test_serialisation_round_trip():
    term = FactorTransfer(beta=50.0, factor_channels=4, p=2, name="ft")
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(term))
    assert (restored.beta, restored.factor_channels, restored.p) == (50.0, 4, 2.0)
    restored.build(TEACHER_SHAPES, STUDENT_SHAPES)
    assert len(restored.trainable_variables) == 9  # 3 convs, 3 BN (gamma, beta)


def test_ie_ft_in_a_distiller():
    teacher, student = tapped_backbone(8, "teacher"), tapped_backbone(6, "student")
    term = FactorTransfer()
    distiller = make_distiller(teacher, student, [term], encoder=teacher_encoder(teacher))
    kernel = np.array(term.translator.convs[0].kernel)
    images, labels = batches(16)
    history = distiller.fit(images, labels, batch_size=8, epochs=1, verbose=0)
    assert {"ft_loss", "inheritance_loss", "exploration_loss"} <= set(history.history)
    assert history.history["ft_loss"][0] > 0
    assert not np.array_equal(kernel, np.array(term.translator.convs[0].kernel))
