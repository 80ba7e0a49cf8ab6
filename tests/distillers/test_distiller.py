"""The IE-KD Distiller: what trains, what never does, which terms are live, and round trips."""

import keras
import numpy as np
import pytest
from keras import ops

from iekd_keras import CoupledWeightDecaySGD, Distiller
from iekd_keras.layers import FactorAutoencoder
from tests.gradients import gradient_norms

from .tiny_models import tiny_backbone, tiny_batches

pytestmark = pytest.mark.backend_agnostic

TERMS = ("loss", "ce_loss", "inheritance_loss", "exploration_loss")


def snapshot(model):
    return [ops.convert_to_numpy(v).copy() for v in model.weights]


def make_distiller(teacher, student, teacher_encoder, run_eagerly=True, **kwargs):
    distiller = Distiller(teacher, student, teacher_encoder, **kwargs)
    return distiller.compile(
        optimizer=CoupledWeightDecaySGD(learning_rate=0.05),
        metrics=["accuracy"],
        run_eagerly=run_eagerly,
    )


def test_compile_chains_and_fit_reports_every_term(teacher, student, teacher_encoder):
    images, labels = tiny_batches()
    history = (
        Distiller(teacher, student, teacher_encoder)
        .compile(optimizer=CoupledWeightDecaySGD(0.05), metrics=["accuracy"], run_eagerly=True)
        .fit(images, labels, batch_size=8, epochs=1, verbose=0)
    )
    assert set(history.history) == {*TERMS, "accuracy"}
    assert history.history["exploration_loss"][0] < 0 < history.history["inheritance_loss"][0]


def test_traced_fit_and_evaluate(teacher, student, teacher_encoder):
    images, labels = tiny_batches()
    distiller = make_distiller(teacher, student, teacher_encoder, run_eagerly=False)
    history = distiller.fit(
        images, labels, batch_size=8, epochs=2, verbose=0, validation_data=(images, labels)
    )
    logs = history.history
    assert set(logs) == {*TERMS, "accuracy", "val_loss", "val_ce_loss", "val_accuracy"}
    assert all(np.isfinite(v).all() for v in logs.values())
    # Student-only evaluation: val_loss is the student's cross-entropy.
    assert logs["val_loss"] == logs["val_ce_loss"]


def test_total_is_the_weighted_sum_of_terms(teacher, student, teacher_encoder):
    images, labels = tiny_batches(8)
    distiller = make_distiller(
        teacher,
        student,
        teacher_encoder,
        lambda_inh=3.0,
        lambda_exp=7.0,
        student_loss_weight=0.4,
        teacher_in_evaluation=True,
    )
    logs = distiller.evaluate(images, labels, batch_size=8, verbose=0, return_dict=True)
    expected = (
        0.4 * logs["ce_loss"] + 3.0 * logs["inheritance_loss"] + 7.0 * logs["exploration_loss"]
    )
    assert logs["loss"] == pytest.approx(expected, rel=1e-5)
    reference_ce = keras.losses.sparse_categorical_crossentropy(
        labels, student(images, training=False)[0], from_logits=True
    )
    assert logs["ce_loss"] == pytest.approx(float(ops.mean(reference_ce)), rel=1e-5)


def test_teacher_never_learns(teacher, student, teacher_encoder):
    images, labels = tiny_batches()
    teacher_before, encoder_before = snapshot(teacher), snapshot(teacher_encoder)
    student_before = snapshot(student)
    make_distiller(teacher, student, teacher_encoder).fit(
        images, labels, batch_size=8, epochs=2, verbose=0
    )
    for before, after in zip(teacher_before, snapshot(teacher), strict=True):
        np.testing.assert_array_equal(before, after)
    for before, after in zip(encoder_before, snapshot(teacher_encoder), strict=True):
        np.testing.assert_array_equal(before, after)
    # The student's weights and BatchNorm statistics did move.
    changed = [
        not np.array_equal(b, a) for b, a in zip(student_before, snapshot(student), strict=True)
    ]
    assert all(changed)


def test_trainable_variables_are_student_and_its_encoders(teacher, student, teacher_encoder):
    distiller = make_distiller(teacher, student, teacher_encoder)
    trainable = {id(v) for v in distiller.trainable_variables}
    expected = [
        *student.trainable_variables,
        *distiller.inheritance_encoder.trainable_variables,
        *distiller.exploration_encoder.trainable_variables,
    ]
    assert trainable == {id(v) for v in expected}
    assert not trainable & {id(v) for v in teacher.variables + teacher_encoder.variables}


def test_exploration_term_is_live(teacher, student, teacher_encoder):
    images, _ = tiny_batches(8)
    distiller = make_distiller(teacher, student, teacher_encoder)
    watched = distiller.exploration_encoder.trainable_variables + [student.get_layer("conv").kernel]

    def exploration():
        terms, _ = distiller.compute_terms(images, np.zeros(8, "int32"), training=True)
        return terms["exploration_loss"]

    _, norms = gradient_norms(exploration, watched)
    assert all(norm > 0 for norm in norms), norms


def test_exploration_alone_increases_the_distance(teacher, student, teacher_encoder):
    images, labels = tiny_batches(16)
    distiller = make_distiller(
        teacher,
        student,
        teacher_encoder,
        lambda_inh=0.0,
        lambda_exp=1.0,
        student_loss_weight=0.0,
    )
    distiller.optimizer.learning_rate.assign(1.0)
    history = distiller.fit(images, labels, batch_size=16, epochs=6, verbose=0, shuffle=False)
    exploration = history.history["exploration_loss"]
    assert exploration[-1] < exploration[0] - 1e-4, exploration
    assert exploration[-1] >= -2 / np.sqrt(4 * 4 * 4)


@pytest.mark.tensorflow_only  # counts calls: JAX traces each function once more
def test_student_runs_once_per_step_and_teacher_only_in_training(
    teacher, student, teacher_encoder, monkeypatch
):
    calls = {"teacher": 0, "student": 0}

    def counting(model, key):
        original = model.call

        def call(*args, **kwargs):
            calls[key] += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(model, "call", call)

    counting(teacher, "teacher")
    counting(student, "student")
    images, labels = tiny_batches(16)
    distiller = make_distiller(teacher, student, teacher_encoder)
    distiller.fit(images, labels, batch_size=8, epochs=1, verbose=0)
    assert calls == {"teacher": 2, "student": 2}
    distiller.evaluate(images, labels, batch_size=8, verbose=0)
    distiller.predict(images, batch_size=8, verbose=0)
    assert calls == {"teacher": 2, "student": 6}


def test_extra_distillation_term_is_added(teacher, student, teacher_encoder):
    class LogitMatch:
        name = "logit_match"

        def __call__(self, teacher_outputs, student_outputs, batch):
            assert batch["indices"] is None and batch["labels"] is not None
            assert set(teacher_outputs) == {"logits", "features", "factor"}
            return 2.0 * ops.mean(ops.square(teacher_outputs["logits"] - student_outputs["logits"]))

    images, labels = tiny_batches(8)
    distiller = make_distiller(
        teacher,
        student,
        teacher_encoder,
        distillation_losses=[LogitMatch()],
        teacher_in_evaluation=True,
    )
    logs = distiller.evaluate(images, labels, batch_size=8, verbose=0, return_dict=True)
    expected_extra = 2.0 * float(ops.mean(ops.square(teacher(images)[0] - student(images)[0])))
    assert logs["logit_match"] == pytest.approx(expected_extra, rel=1e-5)
    ie = 50.0 * (logs["inheritance_loss"] + logs["exploration_loss"])
    assert logs["loss"] == pytest.approx(logs["ce_loss"] + ie + expected_extra, rel=1e-5)


def test_save_and_load_round_trip(teacher, student, teacher_encoder, tmp_path):
    images, labels = tiny_batches(8)
    distiller = make_distiller(
        teacher, student, teacher_encoder, split_mode="random", split_seed=None, lambda_exp=5.0
    )
    distiller.fit(images, labels, batch_size=8, epochs=1, verbose=0)
    distiller.save(tmp_path / "distiller.keras")
    restored = keras.saving.load_model(tmp_path / "distiller.keras")
    assert type(restored) is Distiller and restored.lambda_exp == 5.0
    assert isinstance(restored.optimizer, CoupledWeightDecaySGD)
    assert restored.optimizer.l2_decay == distiller.optimizer.l2_decay
    for original, loaded in zip(
        distiller.optimizer.variables, restored.optimizer.variables, strict=True
    ):
        np.testing.assert_array_equal(ops.convert_to_numpy(original), ops.convert_to_numpy(loaded))
    np.testing.assert_array_equal(
        ops.convert_to_numpy(restored.feature_split.permutation),
        ops.convert_to_numpy(distiller.feature_split.permutation),
    )
    for original, loaded in zip(distiller.weights, restored.weights, strict=True):
        np.testing.assert_array_equal(ops.convert_to_numpy(original), ops.convert_to_numpy(loaded))
    distiller.teacher_in_evaluation = restored.teacher_in_evaluation = True
    terms, _ = distiller.compute_terms(images, labels, training=False)
    restored_terms, _ = restored.compute_terms(images, labels, training=False)
    for name in TERMS:
        np.testing.assert_allclose(float(terms[name]), float(restored_terms[name]), rtol=1e-6)
    np.testing.assert_allclose(
        restored.predict(images, verbose=0), distiller.predict(images, verbose=0), rtol=1e-6
    )


def test_ie_terms_off_without_teacher_encoder(teacher, student):
    distiller = make_distiller(teacher, student, None, lambda_inh=0.0, lambda_exp=0.0)
    images, labels = tiny_batches(8)
    history = distiller.fit(images, labels, batch_size=8, epochs=1, verbose=0)
    assert set(history.history) == {"loss", "ce_loss", "accuracy"}


def test_class_count_mismatch_names_both_models(student, teacher_encoder):
    teacher = tiny_backbone(num_classes=5, channels=8, name="big_teacher")
    with pytest.raises(ValueError, match=r"'big_teacher' predicts 5 classes.*'student'.*3"):
        Distiller(teacher, student, teacher_encoder)


def test_spatial_mismatch_names_both_shapes(teacher, teacher_encoder):
    student = tiny_backbone(channels=6, name="wide_student", input_shape=(16, 16, 3))
    with pytest.raises(ValueError, match=r"4x4.*'wide_student' features are 8x8"):
        Distiller(teacher, student, teacher_encoder)


def test_spatial_mismatch_and_the_resize_option(teacher, teacher_encoder):
    student = tiny_backbone(channels=6, name="big_student", input_shape=(16, 16, 3))
    with pytest.raises(
        ValueError,
        match=r"is 4x4 .*'big_student' features are 8x8.*"
        "resize_teacher_factor=True",
    ):
        Distiller(teacher, student, teacher_encoder)
    # Both models then take 16x16 images; the teacher factor is resized from 8x8... to 8x8.
    big_teacher = tiny_backbone(channels=8, name="teacher16", input_shape=(16, 16, 3))
    small_student = tiny_backbone(channels=6, name="strided", input_shape=(16, 16, 3))
    small_student = keras.Model(
        small_student.inputs,
        [small_student.outputs[0], keras.layers.MaxPooling2D(2)(small_student.outputs[1])],
    )
    autoencoder = FactorAutoencoder(4)
    autoencoder.build(big_teacher.outputs[1].shape)
    distiller = Distiller(
        big_teacher, small_student, autoencoder.encoder, resize_teacher_factor=True
    )
    images = np.random.default_rng(0).normal(size=(2, 16, 16, 3)).astype("float32")
    terms, _ = distiller.compute_terms(images, np.zeros(2, "int32"), training=True)
    assert float(terms["inheritance_loss"]) > 0


def test_feature_map_too_narrow_to_split(teacher, teacher_encoder):
    with pytest.raises(ValueError, match="feature map of 1 channels cannot be split"):
        Distiller(teacher, tiny_backbone(channels=1, name="narrow"), teacher_encoder)


def test_missing_teacher_encoder_and_bad_weights(teacher, student, teacher_encoder):
    with pytest.raises(ValueError, match="need the pre-trained teacher_encoder"):
        Distiller(teacher, student, None)
    with pytest.raises(ValueError, match="lambda_exp=-1 must be a non-negative"):
        Distiller(teacher, student, teacher_encoder, lambda_exp=-1)


def test_model_without_feature_output_is_refused(teacher_encoder, teacher):
    inputs = keras.Input((8, 8, 3))
    plain = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(inputs)), name="plain")
    with pytest.raises(ValueError, match="'plain' has 1 outputs; expected a functional model"):
        Distiller(teacher, plain, teacher_encoder)


def test_sample_weights_are_refused(teacher, student, teacher_encoder):
    images, labels = tiny_batches(8)
    distiller = make_distiller(teacher, student, teacher_encoder)
    with pytest.raises(ValueError, match="does not support"):
        distiller.fit(images, labels, sample_weight=np.ones(8), epochs=1, verbose=0)


def test_factor_autoencoder_encoder_plugs_in(teacher, student):
    autoencoder = FactorAutoencoder(4)
    autoencoder.build(teacher.outputs[1].shape)
    distiller = Distiller(teacher, student, autoencoder.encoder)
    assert distiller.inheritance_encoder.convs[0].kernel.shape == (3, 3, 3, 3)
    assert distiller.exploration_encoder.convs[-1].kernel.shape == (3, 3, 4, 4)


def test_lambda_schedules_follow_the_step(teacher, student, teacher_encoder):
    warm_up = keras.optimizers.schedules.PiecewiseConstantDecay([0], [0.0, 10.0])
    images, labels = tiny_batches(8)
    distiller = make_distiller(
        teacher,
        student,
        teacher_encoder,
        lambda_inh=warm_up,
        lambda_exp=0.0,
        teacher_in_evaluation=True,
    )
    at_start = distiller.evaluate(images, labels, verbose=0, return_dict=True)
    assert at_start["loss"] == pytest.approx(at_start["ce_loss"], rel=1e-6)
    distiller.optimizer.iterations.assign(5)
    later = distiller.evaluate(images, labels, verbose=0, return_dict=True)
    assert later["loss"] == pytest.approx(
        later["ce_loss"] + 10.0 * later["inheritance_loss"], rel=1e-5
    )
    restored = Distiller.from_config(distiller.get_config())
    assert float(restored.lambda_inh(5)) == 10.0


def test_terms_needing_indices_get_them(teacher, student, teacher_encoder):
    seen = {}

    class IndexProbe:
        name = "probe"
        needs_indices = True

        def __call__(self, teacher_outputs, student_outputs, batch):
            seen["indices"] = ops.convert_to_numpy(batch["indices"])
            return ops.zeros(())

    images, labels = tiny_batches(8)
    distiller = make_distiller(
        teacher, student, teacher_encoder, distillation_losses=[IndexProbe()]
    )
    indices = np.arange(100, 108)
    distiller.fit((images, indices), labels, batch_size=8, epochs=1, verbose=0, shuffle=False)
    np.testing.assert_array_equal(seen["indices"], indices)
    with pytest.raises(ValueError, match="needs the examples' dataset indices"):
        distiller.fit(images, labels, batch_size=8, epochs=1, verbose=0)


def dropout_teacher():
    """A teacher whose outputs depend on `training`: Dropout(0.5) before its feature map."""
    inputs = keras.Input((8, 8, 3), name="images")
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="conv")(inputs)
    x = keras.layers.Dropout(0.5, name="dropout")(x)
    features = keras.layers.ReLU(name="features")(x)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(features)
    logits = keras.layers.Dense(3, name="logits")(pooled)
    return keras.Model(inputs, [logits, features], name="dropout_teacher")


def test_train_step_runs_the_teacher_in_inference_mode(student):
    teacher = dropout_teacher()
    autoencoder = FactorAutoencoder(4)
    autoencoder.build(teacher.outputs[1].shape)
    seen = {}

    class TeacherProbe:
        name = "teacher_probe"

        def __call__(self, teacher_outputs, student_outputs, batch):
            seen.update({key: ops.convert_to_numpy(v) for key, v in teacher_outputs.items()})
            return ops.zeros(())

    images, labels = tiny_batches(8)
    distiller = make_distiller(
        teacher, student, autoencoder.encoder, distillation_losses=[TeacherProbe()]
    )
    distiller.fit(images, labels, batch_size=8, epochs=1, verbose=0, shuffle=False)
    logits, features = teacher(images, training=False)
    expected = {
        "logits": logits,
        "features": features,
        "factor": autoencoder.encoder(features, training=False),
    }
    assert set(seen) == set(expected)
    for key, value in expected.items():
        np.testing.assert_allclose(seen[key], ops.convert_to_numpy(value), rtol=1e-5, atol=1e-6)
    # In training mode the teacher drops half its activations: far from the values above.
    dropped = ops.convert_to_numpy(teacher(images, training=True)[1])
    assert np.abs(dropped - ops.convert_to_numpy(features)).max() > 0.1
