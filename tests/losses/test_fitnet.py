"""FitNetHint: the connector's shapes, a golden value, gradients, serialisation, Distiller."""

import keras
import numpy as np
import pytest
from keras import ops

from iekd_keras.losses import FitNetHint
from tests.gradients import gradient_norms

from .helpers import batches, make_distiller, tapped_backbone

pytestmark = pytest.mark.backend_agnostic

RNG = np.random.default_rng(11)


def built(teacher_shape, student_shape, **kwargs):
    term = FitNetHint("hint", "guided", **kwargs)
    term.build({"hint": teacher_shape}, {"guided": student_shape})
    return term


@pytest.mark.parametrize(
    "student_shape, teacher_shape, kernel",
    [
        ((None, 8, 8, 3), (None, 4, 4, 6), (3, 3)),  # halve: 3x3 stride 2, padding 1
        ((None, 4, 4, 3), (None, 8, 8, 6), (4, 4)),  # double: 4x4 transposed stride 2
        ((None, 4, 4, 3), (None, 4, 4, 6), (1, 1)),  # equal: 1x1
        ((None, 6, 5, 3), (None, 4, 4, 6), (3, 2)),  # larger: valid (1 + dh) x (1 + dw)
    ],
    ids=["halve", "double", "equal", "valid"],
)
def test_connector_maps_student_to_teacher_shape(student_shape, teacher_shape, kernel):
    term = built(teacher_shape, student_shape)
    conv = term.connector.get_layer("conv")
    assert tuple(conv.kernel_size) == kernel and conv.use_bias
    assert isinstance(term.connector.layers[-2], keras.layers.BatchNormalization)
    output = term.connector(np.ones((2, *student_shape[1:]), "float32"))
    assert tuple(output.shape) == (2, *teacher_shape[1:])


def test_impossible_connector_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(None, 3, 3, 2\).*\(None, 8, 8, 4\)"):
        built((None, 8, 8, 4), (None, 3, 3, 2))


def test_golden_value_for_the_1x1_connector_in_training_mode():
    f_s = RNG.normal(size=(4, 3, 3, 2)).astype("float32")
    f_t = np.abs(RNG.normal(size=(4, 3, 3, 5))).astype("float32")
    term = built(f_t.shape, f_s.shape, beta=100.0)
    kernel, bias = (np.asarray(w, "float64") for w in term.connector.get_layer("conv").weights)
    value = term({"hint": f_t}, {"guided": f_s}, {"step": 0}, training=True)
    # Independent computation: 1x1 conv, BatchNorm on batch statistics, ReLU, mean square.
    conv = f_s.astype("float64") @ kernel[0, 0] + bias
    mean, var = conv.mean(axis=(0, 1, 2)), conv.var(axis=(0, 1, 2))
    regressed = np.maximum((conv - mean) / np.sqrt(var + 1e-5), 0.0)
    expected = 100.0 * np.mean((regressed - f_t) ** 2)
    np.testing.assert_allclose(float(value), expected, rtol=1e-4)
    # batch["training"] picks the mode when no argument is given: inference uses moving stats.
    inference = term({"hint": f_t}, {"guided": f_s}, {"training": False})
    assert abs(float(inference) - float(value)) > 1e-3


def test_gradient_reaches_student_and_connector():
    f_t = RNG.normal(size=(4, 4, 4, 6)).astype("float32")
    f_s = keras.Variable(RNG.normal(size=(4, 8, 8, 3)).astype("float32"))
    term = built(f_t.shape, f_s.shape)
    sources = [f_s, *term.trainable_variables]
    assert len(term.trainable_variables) == 4  # conv kernel and bias, BN gamma and beta
    _, norms = gradient_norms(lambda: term({"hint": f_t}, {"guided": f_s}, {}), sources)
    assert all(norm > 0 for norm in norms)


def test_unbuilt_call_and_serialisation():
    term = FitNetHint(beta=5.0, use_relu=False, name="hint")
    with pytest.raises(RuntimeError, match="build"):
        term({}, {}, {})
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(term))
    assert isinstance(restored, FitNetHint)
    assert (restored.beta, restored.use_relu, restored.name) == (5.0, False, "hint")
    term.build({"stage2": (None, 4, 4, 6)}, {"stage2": (None, 8, 8, 3)})
    restored.build({"stage2": (None, 4, 4, 6)}, {"stage2": (None, 8, 8, 3)})
    restored.set_weights(term.get_weights())
    x = RNG.normal(size=(2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(
        ops.convert_to_numpy(restored.connector(x)), ops.convert_to_numpy(term.connector(x))
    )


def test_fitnet_in_a_distiller_trains_the_connector():
    teacher, student = tapped_backbone(8, "teacher"), tapped_backbone(6, "student")
    term = FitNetHint("stage1", "stage1")
    distiller = make_distiller(teacher, student, [term])
    trainable = {id(v) for v in distiller.trainable_variables}
    assert {id(v) for v in term.trainable_variables} <= trainable
    kernel = np.array(term.connector.get_layer("conv").kernel)
    images, labels = batches(16)
    history = distiller.fit(images, labels, batch_size=8, epochs=1, verbose=0)
    assert history.history["fitnet_loss"][0] > 0
    assert not np.array_equal(kernel, np.array(term.connector.get_layer("conv").kernel))
