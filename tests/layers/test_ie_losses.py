"""Golden values of the IE losses against an independent numpy computation."""

import keras
import numpy as np
import pytest
from keras import ops

from iekd_keras.layers import ExplorationLoss, InheritanceLoss
from tests.gradients import value_and_gradients

pytestmark = pytest.mark.backend_agnostic

RNG = np.random.default_rng(7)
STUDENT = RNG.normal(size=(3, 2, 2, 4)).astype("float32")
TEACHER = RNG.normal(size=(3, 2, 2, 4)).astype("float32")
STUDENT_WITH_ZERO = STUDENT.copy()
STUDENT_WITH_ZERO[1] = 0.0


def numpy_normalize(x):
    flat = x.reshape(len(x), -1).astype("float64")
    return flat / np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-12)


def numpy_lp(student, teacher, p):
    d = numpy_normalize(student) - numpy_normalize(teacher)
    return np.mean(np.abs(d) ** p) ** (1.0 / p)


def numpy_cosine(student, teacher):
    return np.sum(numpy_normalize(student) * numpy_normalize(teacher), axis=1)


@pytest.mark.parametrize("student", [STUDENT, STUDENT_WITH_ZERO], ids=["dense", "zero_sample"])
@pytest.mark.parametrize("p", [1, 2])
def test_lp_golden_values(student, p):
    expected = numpy_lp(student, TEACHER, p)
    inheritance = float(InheritanceLoss(p=p)(student, TEACHER))
    exploration = float(ExplorationLoss(p=p)(student, TEACHER))
    np.testing.assert_allclose(inheritance, expected, rtol=1e-5)
    np.testing.assert_allclose(exploration, -expected, rtol=1e-5)


@pytest.mark.parametrize("student", [STUDENT, STUDENT_WITH_ZERO], ids=["dense", "zero_sample"])
def test_cosine_golden_values(student):
    cosine = numpy_cosine(student, TEACHER)
    inheritance = float(InheritanceLoss(metric="cosine")(student, TEACHER))
    exploration = float(ExplorationLoss(metric="cosine")(student, TEACHER))
    np.testing.assert_allclose(inheritance, np.mean(1 - cosine), rtol=1e-5)
    np.testing.assert_allclose(exploration, np.mean(np.abs(cosine)), rtol=1e-5)


def test_p1_is_mean_absolute_difference_of_normalised_factors():
    # Hand-computable case: two one-hot samples per factor.
    student = np.zeros((2, 1, 1, 2), "float32")
    teacher = np.zeros((2, 1, 1, 2), "float32")
    student[:, 0, 0, 0] = 3.0  # normalises to (1, 0)
    teacher[:, 0, 0, 1] = 0.5  # normalises to (0, 1)
    assert float(InheritanceLoss()(student, teacher)) == pytest.approx(1.0)
    assert float(InheritanceLoss()(student, student)) == pytest.approx(0.0)


@pytest.mark.parametrize("layer_class", [InheritanceLoss, ExplorationLoss])
@pytest.mark.parametrize("p", [1, 2])
def test_zero_sample_has_finite_gradient(layer_class, p):
    student = keras.Variable(STUDENT_WITH_ZERO)
    _, (gradient,) = value_and_gradients(lambda: layer_class(p=p)(student, TEACHER), [student])
    gradient = keras.ops.convert_to_numpy(gradient)
    assert np.all(np.isfinite(gradient))
    assert np.abs(gradient[0]).sum() > 0


def test_p2_gradient_matches_finite_differences():
    student = keras.Variable(STUDENT.astype("float64").astype("float32"))
    _, (gradient,) = value_and_gradients(lambda: InheritanceLoss(p=2)(student, TEACHER), [student])
    gradient = keras.ops.convert_to_numpy(gradient)
    index = (1, 0, 1, 2)
    step = 1e-2
    plus, minus = STUDENT.astype("float64"), STUDENT.astype("float64")
    plus[index] += step
    minus[index] -= step
    numeric = (numpy_lp(plus, TEACHER, 2) - numpy_lp(minus, TEACHER, 2)) / (2 * step)
    np.testing.assert_allclose(gradient[index], numeric, rtol=1e-2)


def test_exploration_bound():
    # |L_exp| <= 2 / sqrt(D) for p = 1 with unit-norm factors (docs/method.md#the-objective).
    value = float(ExplorationLoss()(STUDENT, -STUDENT))
    assert -2 / np.sqrt(16) <= value < 0
    np.testing.assert_allclose(value, -np.mean(2 * np.abs(numpy_normalize(STUDENT))), rtol=1e-5)


def test_mixed_bfloat16_resolves_small_gap():
    keras.config.set_dtype_policy("mixed_bfloat16")
    layer = InheritanceLoss()
    assert layer.compute_dtype == "float32"
    base = np.linspace(1.0, 2.0, 32, dtype="float32").reshape(2, 2, 2, 4)
    shifted = base.copy()
    shifted[:, 0, 0, 0] += 1e-3
    value = float(layer(base, shifted))
    expected = numpy_lp(base, shifted, 1)
    assert expected > 0
    np.testing.assert_allclose(value, expected, rtol=1e-2)


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 2, 4\).*\(2, 2, 8\)"):
        InheritanceLoss()(STUDENT, np.zeros((3, 2, 2, 8), "float32"))


@pytest.mark.parametrize(
    "kwargs, message",
    [({"p": 0}, "p=0 must be a positive"), ({"metric": "kl"}, "metric='kl' is not supported")],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        InheritanceLoss(**kwargs)


@pytest.mark.parametrize("layer_class", [InheritanceLoss, ExplorationLoss])
def test_serialisation_round_trip(layer_class):
    layer = layer_class(p=2, metric="lp", name="term")
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is layer_class
    assert (restored.p, restored.metric, restored.name) == (2.0, "lp", "term")
    np.testing.assert_allclose(
        ops.convert_to_numpy(restored(STUDENT, TEACHER)),
        ops.convert_to_numpy(layer(STUDENT, TEACHER)),
    )


@pytest.mark.parametrize("layer_class", [InheritanceLoss, ExplorationLoss])
def test_keras_file_round_trip(layer_class, tmp_path):
    student = keras.Input((2, 2, 4), name="student_factor")
    teacher = keras.Input((2, 2, 4), name="teacher_factor")
    distance = layer_class(p=2, name="term")(student, teacher)
    model = keras.Model([student, teacher], keras.ops.reshape(distance, (1,)))
    model.save(tmp_path / "term.keras")
    restored = keras.saving.load_model(tmp_path / "term.keras")
    assert restored.get_layer("term").p == 2.0
    np.testing.assert_allclose(
        ops.convert_to_numpy(restored([STUDENT, TEACHER])),
        ops.convert_to_numpy(model([STUDENT, TEACHER])),
    )
