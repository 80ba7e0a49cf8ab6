"""KerasDistillationLoss: Keras's own distillation losses as Distiller terms."""

import keras
import numpy as np
import pytest

from iekd_keras.losses import HintonKD, KerasDistillationLoss
from tests.gradients import gradient_norms

from .helpers import batches, make_distiller, numpy_log_softmax, tapped_backbone

pytestmark = pytest.mark.backend_agnostic

RNG = np.random.default_rng(19)
TEACHER_LOGITS = RNG.normal(scale=2.0, size=(4, 5)).astype("float32")
STUDENT_LOGITS = RNG.normal(scale=2.0, size=(4, 5)).astype("float32")


def logits_term(temperature=4.0, **kwargs):
    loss = keras.distillation.LogitsDistillation(temperature, loss=keras.losses.KLDivergence())
    return KerasDistillationLoss(loss, **kwargs)


def test_logits_distillation_with_kl_instance_is_kd_without_alpha():
    term = logits_term(weight=0.9)
    assert (term.teacher_output, term.student_output) == ("logits", "logits")
    value = float(term({"logits": TEACHER_LOGITS}, {"logits": STUDENT_LOGITS}, {}))
    log_p = numpy_log_softmax(TEACHER_LOGITS / 4.0)
    log_q = numpy_log_softmax(STUDENT_LOGITS / 4.0)
    expected = 0.9 * 16.0 * np.mean(np.sum(np.exp(log_p) * (log_p - log_q), axis=1))
    np.testing.assert_allclose(value, expected, rtol=1e-4)
    native = HintonKD(4.0, 0.9)({"logits": TEACHER_LOGITS}, {"logits": STUDENT_LOGITS}, {})
    np.testing.assert_allclose(value, float(native), rtol=1e-4)


def test_default_kl_divergence_function_is_refused():
    with pytest.raises(ValueError, match="kl_divergence FUNCTION"):
        KerasDistillationLoss(keras.distillation.LogitsDistillation(4.0))
    with pytest.raises(TypeError, match="DistillationLoss"):
        KerasDistillationLoss(keras.losses.KLDivergence())


def test_feature_distillation_on_taps():
    loss = keras.distillation.FeatureDistillation(
        "mse", teacher_layer_name="stage1", student_layer_name="stage1"
    )
    term = KerasDistillationLoss(loss, weight=2.0, name="feature_mse")
    assert (term.teacher_output, term.student_output) == ("stage1", "stage1")
    with pytest.raises(ValueError, match=r"per-sample shapes must match"):
        term.build({"stage1": (None, 4, 4, 3)}, {"stage1": (None, 4, 4, 2)})
    f_t = RNG.normal(size=(2, 4, 4, 3)).astype("float32")
    f_s = keras.Variable(RNG.normal(size=(2, 4, 4, 3)).astype("float32"))
    value, norms = gradient_norms(lambda: term({"stage1": f_t}, {"stage1": f_s}, {}), [f_s])
    expected = 2.0 * np.mean((f_t - keras.ops.convert_to_numpy(f_s)) ** 2)
    np.testing.assert_allclose(float(value), expected, rtol=1e-5)
    assert norms[0] > 0
    default = KerasDistillationLoss(keras.distillation.FeatureDistillation())
    assert (default.teacher_output, default.student_output) == ("features", "features")


def test_serialisation_round_trip():
    term = logits_term(temperature=3.0, weight=0.5, name="keras_kd")
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(term))
    assert restored.name == "keras_kd" and restored.weight == 0.5
    assert restored.loss.temperature == 3.0
    outputs = ({"logits": TEACHER_LOGITS}, {"logits": STUDENT_LOGITS}, {})
    np.testing.assert_allclose(float(restored(*outputs)), float(term(*outputs)), rtol=1e-6)


def test_keras_logits_distillation_in_a_distiller():
    teacher, student = tapped_backbone(8, "teacher"), tapped_backbone(6, "student")
    distiller = make_distiller(teacher, student, [logits_term(name="keras_kd")])
    images, labels = batches(16)
    history = distiller.fit(images, labels, batch_size=8, epochs=1, verbose=0)
    assert history.history["keras_kd"][0] > 0
