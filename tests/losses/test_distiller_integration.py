"""All terms together in one Distiller: a traced fit step, then a .keras round trip."""

import keras
import numpy as np
import pytest
from keras import ops

from iekd_keras.losses import (
    AttentionTransfer,
    ContrastiveRepresentationDistillation,
    FactorTransfer,
    FitNetHint,
    HintonKD,
    KerasDistillationLoss,
    LinearWarmup,
)

from .helpers import batches, make_distiller, snapshot, tapped_backbone, teacher_encoder

pytestmark = pytest.mark.backend_agnostic

NUM_EXAMPLES = 32


def all_terms():
    return [
        HintonKD(alpha=LinearWarmup(0.9, 2)),
        AttentionTransfer(pairs=[("stage1", "stage1"), ("features", "features")]),
        FactorTransfer(),
        ContrastiveRepresentationDistillation(
            NUM_EXAMPLES, embedding_dim=16, num_negatives=8, seed=7
        ),
        FitNetHint("stage1", "stage1"),
        KerasDistillationLoss(
            keras.distillation.LogitsDistillation(4.0, loss=keras.losses.KLDivergence()),
            weight=0.5,
            name="keras_kd",
        ),
    ]


def test_traced_fit_then_keras_round_trip(tmp_path):
    teacher, student = tapped_backbone(8, "teacher"), tapped_backbone(6, "student")
    terms = all_terms()
    distiller = make_distiller(
        teacher,
        student,
        terms,
        encoder=teacher_encoder(teacher),
        student_loss_weight=0.1,
        run_eagerly=False,
    )
    crd = terms[3]
    before = snapshot(distiller.trainable_variables + [crd.student_memory, crd.teacher_memory])
    images, labels = batches(8)
    indices = np.arange(8) * 3
    history = distiller.fit((images, indices), labels, batch_size=8, epochs=1, verbose=0)
    names = {"kd_loss", "at_loss", "ft_loss", "crd_loss", "fitnet_loss", "keras_kd"}
    assert names <= set(history.history)
    assert all(np.isfinite(v[0]) for v in history.history.values())
    # kd_loss at step 0 is 0 under the warm-up; every other term is live.
    assert history.history["kd_loss"][0] == 0.0
    assert all(history.history[name][0] > 0 for name in names - {"kd_loss"})
    after = snapshot(distiller.trainable_variables + [crd.student_memory, crd.teacher_memory])
    moved = [not np.array_equal(b, a) for b, a in zip(before, after, strict=True)]
    assert all(moved[-2:]) and sum(moved) > 0.9 * len(moved)
    assert float(crd.normalizers_set) == 1.0

    distiller.save(tmp_path / "distiller.keras")
    restored = keras.saving.load_model(tmp_path / "distiller.keras")
    assert [type(t) for t in restored.distillation_losses] == [type(t) for t in terms]
    assert restored.needs_indices
    for original, loaded in zip(distiller.variables, restored.variables, strict=True):
        np.testing.assert_array_equal(ops.convert_to_numpy(original), ops.convert_to_numpy(loaded))
    restored_crd = restored.distillation_losses[3]
    for name in ("student_memory", "teacher_memory", "student_normalizer", "normalizers_set"):
        np.testing.assert_array_equal(
            ops.convert_to_numpy(getattr(restored_crd, name)),
            ops.convert_to_numpy(getattr(crd, name)),
        )
    np.testing.assert_array_equal(
        ops.convert_to_numpy(restored_crd.seed_generator.state),
        ops.convert_to_numpy(crd.seed_generator.state),
    )
    distiller.teacher_in_evaluation = restored.teacher_in_evaluation = True
    terms_now, _ = distiller.compute_terms(images, labels, training=False)
    restored_terms, _ = restored.compute_terms(images, labels, training=False)
    for name, value in terms_now.items():
        np.testing.assert_allclose(float(restored_terms[name]), float(value), rtol=1e-5)
