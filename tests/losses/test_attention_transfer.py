"""AttentionTransfer: golden values (equal and unequal sizes), errors, gradients, Distiller."""

import keras
import numpy as np
import pytest

from iekd_keras.losses import AttentionTransfer
from iekd_keras.models import get_model, with_taps
from tests.gradients import gradient_norms

from .helpers import batches, make_distiller, numpy_normalize_rows

RNG = np.random.default_rng(5)


def maps(*shape):
    return RNG.normal(size=shape).astype("float32")


def numpy_attention(f):
    return numpy_normalize_rows(np.mean(np.asarray(f, "float64") ** 2, axis=-1))


def numpy_pool(f, size):
    """Adaptive average pooling to `size` (integer factors), written with explicit loops."""
    b, h, w, c = f.shape
    fh, fw = h // size[0], w // size[1]
    out = np.zeros((b, size[0], size[1], c))
    for i in range(size[0]):
        for j in range(size[1]):
            out[:, i, j] = f[:, i * fh : (i + 1) * fh, j * fw : (j + 1) * fw].mean(axis=(1, 2))
    return out


def numpy_at(pairs, beta):
    total = 0.0
    for f_t, f_s in pairs:
        if f_s.shape[1] > f_t.shape[1]:
            f_s = numpy_pool(f_s, f_t.shape[1:3])
        elif f_t.shape[1] > f_s.shape[1]:
            f_t = numpy_pool(f_t, f_s.shape[1:3])
        total += np.mean((numpy_attention(f_s) - numpy_attention(f_t)) ** 2)
    return beta * total


@pytest.mark.backend_agnostic
def test_golden_value_over_two_pairs_of_equal_sizes():
    teacher = {"stage1": maps(3, 4, 4, 5), "stage2": maps(3, 2, 2, 8)}
    student = {"stage1": maps(3, 4, 4, 2), "stage2": maps(3, 2, 2, 3)}
    term = AttentionTransfer(pairs=[("stage1", "stage1"), ("stage2", "stage2")], beta=1000.0)
    expected = numpy_at(
        [(teacher["stage1"], student["stage1"]), (teacher["stage2"], student["stage2"])], 1000.0
    )
    np.testing.assert_allclose(float(term(teacher, student, {})), expected, rtol=1e-5)


@pytest.mark.backend_agnostic
@pytest.mark.parametrize(
    "teacher_shape, student_shape",
    [((2, 4, 4, 3), (2, 8, 8, 5)), ((2, 6, 4, 3), (2, 3, 2, 5)), ((2, 4, 4, 3), (2, 4, 4, 5))],
    ids=["student_larger", "teacher_larger_non_square", "equal"],
)
def test_unequal_spatial_sizes_pool_the_larger_map(teacher_shape, student_shape):
    f_t, f_s = maps(*teacher_shape), maps(*student_shape)
    term = AttentionTransfer(pairs=[("t", "s")], beta=10.0)
    term.build({"t": teacher_shape}, {"s": student_shape})
    expected = numpy_at([(f_t, f_s)], 10.0)
    np.testing.assert_allclose(float(term({"t": f_t}, {"s": f_s}, {})), expected, rtol=1e-5)


@pytest.mark.backend_agnostic
def test_non_integer_pooling_and_missing_taps_are_refused():
    term = AttentionTransfer(pairs=[("stage1", "stage1")])
    with pytest.raises(ValueError, match=r"\(None, 6, 6, 4\).*\(None, 4, 4, 2\)"):
        term.build({"stage1": (None, 6, 6, 4)}, {"stage1": (None, 4, 4, 2)})
    with pytest.raises(ValueError, match=r"\(None, 8, 4, 4\).*\(None, 4, 8, 2\)"):
        term.build({"stage1": (None, 8, 4, 4)}, {"stage1": (None, 4, 8, 2)})
    with pytest.raises(ValueError, match=r"student has no output named 'stage1'.*with_taps"):
        term.build({"stage1": (None, 4, 4, 4)}, {"logits": (None, 3), "features": (None, 2, 2, 2)})
    with pytest.raises(ValueError, match="pairs="):
        AttentionTransfer(pairs=[])


@pytest.mark.backend_agnostic
def test_gradient_reaches_the_student_map():
    f_t = maps(2, 4, 4, 3)
    f_s = keras.Variable(maps(2, 8, 8, 5))
    term = AttentionTransfer(pairs=[("a", "a")])
    _, norms = gradient_norms(lambda: term({"a": f_t}, {"a": f_s}, {}), [f_s])
    assert norms[0] > 0


@pytest.mark.backend_agnostic
def test_serialisation_round_trip():
    term = AttentionTransfer(pairs=[("stage2", "stage1")], beta=3.0, name="at")
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(term))
    assert restored.pairs == (("stage2", "stage1"),) and restored.beta == 3.0
    assert restored.name == "at"


def test_at_on_resnet8_stage_taps_in_a_distiller():
    taps = ["stage1", "stage2", "stage3"]
    teacher = with_taps(get_model("resnet8", 10, (8, 8, 3), name="teacher"), taps)
    student = with_taps(get_model("resnet8", 10, (8, 8, 3), name="student"), taps)
    distiller = make_distiller(teacher, student, [AttentionTransfer()])
    images, _ = batches(16)
    labels = np.arange(16) % 10
    history = distiller.fit(images, labels, batch_size=8, epochs=1, verbose=0)
    assert history.history["at_loss"][0] > 0
    # The reported value is the formula on the models' own stage maps.
    distiller.teacher_in_evaluation = True
    logs = distiller.evaluate(images, labels, batch_size=16, verbose=0, return_dict=True)
    t_maps = teacher(images, training=False)[2:]
    s_maps = student(images, training=False)[2:]
    pairs = [(np.asarray(t), np.asarray(s)) for t, s in zip(t_maps, s_maps, strict=True)]
    expected = numpy_at(pairs, 1000.0)
    np.testing.assert_allclose(logs["at_loss"], expected, rtol=1e-4)
