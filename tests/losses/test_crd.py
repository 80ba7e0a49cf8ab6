"""CRD: golden NCE loss and memory update, normaliser, negatives, errors, state, Distiller."""

import keras
import numpy as np
import pytest
from keras import ops

from iekd_keras.losses import ContrastiveRepresentationDistillation as CRD
from tests.gradients import gradient_norms

from .helpers import (
    batches,
    make_distiller,
    numpy_normalize_rows,
    snapshot,
    tapped_backbone,
)

pytestmark = pytest.mark.backend_agnostic

N, K, D, B = 32, 8, 16, 4
TEACHER_SHAPES = {"logits": (None, 3), "features": (None, 4, 4, 8)}
STUDENT_SHAPES = {"logits": (None, 3), "features": (None, 4, 4, 6)}
RNG = np.random.default_rng(17)
INDICES = np.array([3, 17, 0, 30], "int32")
NEGATIVES = RNG.integers(0, N, size=(B, K)).astype("int32")


def built(**kwargs):
    kwargs.setdefault("seed", 3)
    term = CRD(N, embedding_dim=D, num_negatives=K, **kwargs)
    term.build(TEACHER_SHAPES, STUDENT_SHAPES)
    return term


def fixed_negatives(monkeypatch, term, negatives=NEGATIVES):
    monkeypatch.setattr(term, "_negatives", lambda batch_size: ops.convert_to_tensor(negatives))


def outputs(seed):
    rng = np.random.default_rng(seed)
    teacher = {"features": np.abs(rng.normal(size=(B, 4, 4, 8))).astype("float32")}
    student = {"features": np.abs(rng.normal(size=(B, 4, 4, 6))).astype("float32")}
    return teacher, student


def numpy_embedding(head, feature_map):
    kernel, bias = (np.asarray(w, "float64") for w in head.weights)
    return numpy_normalize_rows(
        np.asarray(feature_map, "float64").mean(axis=(1, 2)) @ kernel + bias
    )


def numpy_crd(term, teacher, student, indices, negatives, normalizers=None):
    """Loss, (Z_s, Z_t) and the updated banks, from the definitions in CRD's paper and code."""
    v_s = numpy_embedding(term.student_head, student["features"])
    v_t = numpy_embedding(term.teacher_head, teacher["features"])
    m_s = np.asarray(term.student_memory, "float64")
    m_t = np.asarray(term.teacher_memory, "float64")
    candidates = np.concatenate([indices[:, None], negatives], axis=1)
    s_scores = np.exp(np.einsum("bkd,bd->bk", m_t[candidates], v_s) / term.temperature)
    t_scores = np.exp(np.einsum("bkd,bd->bk", m_s[candidates], v_t) / term.temperature)
    if normalizers is None:
        normalizers = (N * s_scores.mean(), N * t_scores.mean())

    def nce(p):
        c, eps = K / N, 1e-7
        positive = np.log(p[:, 0] / (p[:, 0] + c + eps))
        negative = np.log(c / (p[:, 1:] + c + eps)).sum(axis=1)
        return -(positive + negative).mean()

    loss = term.beta * (nce(s_scores / normalizers[0]) + nce(t_scores / normalizers[1]))
    momentum = term.momentum
    new_s, new_t = m_s.copy(), m_t.copy()
    new_s[indices] = numpy_normalize_rows(momentum * m_s[indices] + (1 - momentum) * v_s)
    new_t[indices] = numpy_normalize_rows(momentum * m_t[indices] + (1 - momentum) * v_t)
    return loss, normalizers, new_s, new_t


def test_memory_banks_start_uniform_and_seeded():
    term = built()
    bound = 1.0 / np.sqrt(D / 3.0)
    banks = [np.asarray(term.student_memory), np.asarray(term.teacher_memory)]
    for bank in banks:
        assert bank.shape == (N, D) and np.abs(bank).max() <= bound
        assert np.abs(bank).max() > 0.8 * bound
    assert not np.array_equal(*banks)
    np.testing.assert_array_equal(np.asarray(built().student_memory), banks[0])
    assert not term.student_memory.trainable and float(term.normalizers_set) == 0.0


def test_golden_loss_memory_update_and_normalizers(monkeypatch):
    term = built()
    fixed_negatives(monkeypatch, term)
    teacher, student = outputs(0)
    loss, normalizers, new_s, new_t = numpy_crd(term, teacher, student, INDICES, NEGATIVES)
    value = term(teacher, student, {"indices": INDICES, "step": 0}, training=True)
    np.testing.assert_allclose(float(value), loss, rtol=1e-4)
    np.testing.assert_allclose(float(term.student_normalizer), normalizers[0], rtol=1e-4)
    np.testing.assert_allclose(float(term.teacher_normalizer), normalizers[1], rtol=1e-4)
    assert float(term.normalizers_set) == 1.0
    # Rows at the batch indices move to the numpy update; every other row is untouched.
    np.testing.assert_allclose(np.asarray(term.student_memory), new_s, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(term.teacher_memory), new_t, rtol=1e-5, atol=1e-6)


def test_normalizers_are_set_once(monkeypatch):
    term = built()
    fixed_negatives(monkeypatch, term)
    term(*outputs(0), {"indices": INDICES}, training=True)
    first = (float(term.student_normalizer), float(term.teacher_normalizer))
    teacher, student = outputs(1)
    other = np.array([5, 6, 7, 8], "int32")
    loss, _, new_s, _ = numpy_crd(term, teacher, student, other, NEGATIVES, normalizers=first)
    value = term(teacher, student, {"indices": other}, training=True)
    assert (float(term.student_normalizer), float(term.teacher_normalizer)) == first
    np.testing.assert_allclose(float(value), loss, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(term.student_memory), new_s, rtol=1e-5, atol=1e-6)


def test_inference_and_missing_indices_change_no_state(monkeypatch):
    term = built()
    fixed_negatives(monkeypatch, term)
    before = snapshot(term.non_trainable_variables)
    teacher, student = outputs(0)
    loss, *_ = numpy_crd(term, teacher, student, INDICES, NEGATIVES)
    value = term(teacher, student, {"indices": INDICES, "training": False})
    np.testing.assert_allclose(float(value), loss, rtol=1e-4)
    assert float(term(teacher, student, {"indices": None})) == 0.0
    for b, a in zip(before, snapshot(term.non_trainable_variables), strict=True):
        np.testing.assert_array_equal(b, a)


def test_negatives_are_uniform_draws_from_the_seeded_sampler():
    term = built()
    first, second = (ops.convert_to_numpy(term._negatives(64)) for _ in range(2))
    assert first.shape == (64, K) and first.dtype == np.int32
    assert first.min() >= 0 and first.max() < N and len(np.unique(first)) == N
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(ops.convert_to_numpy(built()._negatives(64)), first)


def test_too_few_examples_and_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="num_examples=8 must be larger than num_negatives=8"):
        CRD(8, num_negatives=8)
    with pytest.raises(
        ValueError, match="num_examples=100 must be larger than num_negatives=16384"
    ):
        CRD(100)
    with pytest.raises(ValueError, match="momentum=1"):
        CRD(N, num_negatives=K, momentum=1)
    with pytest.raises(ValueError, match="temperature=0"):
        CRD(N, num_negatives=K, temperature=0)
    with pytest.raises(ValueError, match="teacher has no output named 'penultimate'"):
        CRD(N, num_negatives=K, teacher_output="penultimate").build(TEACHER_SHAPES, STUDENT_SHAPES)


def test_gradient_reaches_student_and_both_heads(monkeypatch):
    term = built()
    fixed_negatives(monkeypatch, term)
    teacher, student = outputs(0)
    features = keras.Variable(student["features"])
    sources = [features, term.student_head.kernel, term.teacher_head.kernel]
    _, norms = gradient_norms(
        lambda: term(teacher, {"features": features}, {"indices": INDICES}, training=True),
        sources,
    )
    assert all(norm > 0 for norm in norms)
    assert {id(v) for v in term.trainable_variables} == {
        id(v) for v in term.student_head.weights + term.teacher_head.weights
    }


def test_state_round_trips_through_config_and_weights():
    term = built(beta=0.5, momentum=0.25, temperature=0.1)
    term(*outputs(0), {"indices": INDICES}, training=True)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(term))
    assert restored.get_config() == term.get_config()
    assert restored.needs_indices
    assert restored.built  # rebuilt from the saved build config (the two shape dicts)
    restored.set_weights(term.get_weights())
    store = {}
    term.save_own_variables(store)
    assert "negative_sampler_state" in store
    restored.load_own_variables(store)
    for original, loaded in zip(term.variables, restored.variables, strict=True):
        np.testing.assert_array_equal(ops.convert_to_numpy(original), ops.convert_to_numpy(loaded))
    np.testing.assert_array_equal(
        ops.convert_to_numpy(restored._negatives(B)), ops.convert_to_numpy(term._negatives(B))
    )


def test_crd_in_a_distiller_updates_only_the_seen_rows():
    teacher, student = tapped_backbone(8, "teacher"), tapped_backbone(6, "student")
    term = CRD(N, embedding_dim=D, num_negatives=K, seed=1)
    distiller = make_distiller(teacher, student, [term])
    assert distiller.needs_indices
    banks = [term.student_memory, term.teacher_memory]
    before = snapshot(banks)
    images, labels = batches(8)
    seen = np.array([2, 5, 7, 11, 13, 19, 23, 29])
    history = distiller.fit((images, seen), labels, batch_size=4, epochs=1, verbose=0)
    assert history.history["crd_loss"][0] > 0
    unseen = np.setdiff1d(np.arange(N), seen)
    for b, a in zip(before, snapshot(banks), strict=True):
        assert not np.any(np.all(np.isclose(b[seen], a[seen]), axis=1))
        np.testing.assert_array_equal(b[unseen], a[unseen])
    assert float(term.normalizers_set) == 1.0
