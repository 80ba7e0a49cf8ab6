"""HintonKD: golden values, gradients, schedules, serialisation, and a Distiller fit."""

import keras
import numpy as np
import pytest

from iekd_keras.losses import HintonKD, LinearWarmup
from tests.gradients import gradient_norms

from .helpers import (
    batches,
    make_distiller,
    numpy_log_softmax,
    snapshot,
    tapped_backbone,
)

pytestmark = pytest.mark.backend_agnostic

RNG = np.random.default_rng(3)
TEACHER_LOGITS = RNG.normal(scale=3.0, size=(5, 7)).astype("float32")
STUDENT_LOGITS = RNG.normal(scale=3.0, size=(5, 7)).astype("float32")


def numpy_kd(teacher, student, temperature, alpha):
    log_p = numpy_log_softmax(teacher / temperature)
    log_q = numpy_log_softmax(student / temperature)
    kl = np.sum(np.exp(log_p) * (log_p - log_q), axis=1)
    return alpha * temperature**2 * kl.mean()


@pytest.mark.parametrize("temperature, alpha", [(4.0, 0.9), (1.0, 1.0), (20.0, 0.95)])
def test_golden_value(temperature, alpha):
    term = HintonKD(temperature=temperature, alpha=alpha)
    value = term({"logits": TEACHER_LOGITS}, {"logits": STUDENT_LOGITS}, {"step": 0})
    expected = numpy_kd(TEACHER_LOGITS, STUDENT_LOGITS, temperature, alpha)
    np.testing.assert_allclose(float(value), expected, rtol=1e-5)
    same = term({"logits": TEACHER_LOGITS}, {"logits": TEACHER_LOGITS}, {})
    assert abs(float(same)) < 1e-6


def test_gradient_reaches_the_student_logits():
    student = keras.Variable(STUDENT_LOGITS)
    _, norms = gradient_norms(
        lambda: HintonKD()({"logits": TEACHER_LOGITS}, {"logits": student}, {}), [student]
    )
    assert norms[0] > 0


def test_alpha_schedule_follows_the_step():
    term = HintonKD(alpha=LinearWarmup(1.0, 10))
    outputs = ({"logits": TEACHER_LOGITS}, {"logits": STUDENT_LOGITS})
    assert float(term(*outputs, {"step": 0})) == 0.0
    full = numpy_kd(TEACHER_LOGITS, STUDENT_LOGITS, 4.0, 1.0)
    np.testing.assert_allclose(float(term(*outputs, {"step": 5})), 0.5 * full, rtol=1e-5)
    np.testing.assert_allclose(float(term(*outputs, {"step": 50})), full, rtol=1e-5)


def test_serialisation_round_trip_and_bad_arguments():
    term = HintonKD(temperature=3.0, alpha=LinearWarmup(0.9, 4), name="kd")
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(term))
    assert isinstance(restored, HintonKD) and restored.name == "kd"
    assert restored.temperature == 3.0 and isinstance(restored.alpha, LinearWarmup)
    assert restored.get_config() == term.get_config()
    with pytest.raises(ValueError, match="temperature=0"):
        HintonKD(temperature=0)
    with pytest.raises(ValueError, match="alpha=-1"):
        HintonKD(alpha=-1)


def test_plain_kd_in_a_distiller():
    teacher, student = tapped_backbone(8, "teacher"), tapped_backbone(6, "student")
    distiller = make_distiller(teacher, student, [HintonKD()], student_loss_weight=0.1)
    before = snapshot(student.trainable_variables)
    images, labels = batches(16)
    history = distiller.fit(images, labels, batch_size=8, epochs=1, verbose=0)
    assert set(history.history) == {"loss", "ce_loss", "kd_loss"}
    assert history.history["kd_loss"][0] > 0
    after = snapshot(student.trainable_variables)
    assert not any(np.array_equal(b, a) for b, a in zip(before, after, strict=True))
    logs = distiller.evaluate(images, labels, verbose=0, return_dict=True)
    assert set(logs) == {"loss", "ce_loss"}
