"""Every bad input a user can cause gets one clear sentence, and no run loses its work."""

import contextlib
import json
from pathlib import Path

import keras
import ml_collections
import numpy as np
import pytest

from configs import quickstart
from iekd_keras import CoupledWeightDecaySGD, Distiller, StandaloneTrainer
from iekd_keras.data import ImageData, load_digits
from iekd_keras.experiment.callbacks import NonFiniteLossGuard, StageCheckpoint
from iekd_keras.experiment.config_checks import ConfigError, validate_config
from iekd_keras.experiment.evaluation import load_two_output_model
from iekd_keras.experiment.records import prepare_workdir
from iekd_keras.layers import FactorAutoencoder

from .distillers.tiny_models import tiny_backbone, tiny_batches


def config_with(**changes):
    """The quickstart config with changes, as a user's own config file could write them."""
    tree = quickstart.get_config().to_dict()
    for path, value in changes.items():
        *groups, key = path.split("__")
        target = tree
        for group in groups:
            target = target[group]
        target[key] = value
    return ml_collections.ConfigDict(tree)


# 1. Config validation.
@pytest.mark.parametrize(
    "changes, message",
    [
        (
            {"distiller__lambda_ihn": 1.0},
            r"Unknown config key config.distiller.lambda_ihn. Did "
            r"you mean config.distiller.lambda_inh\?",
        ),
        ({"batch_size": "64"}, r"config.batch_size='64' has type str; expected int"),
        (
            {"distiller__lambda_exp": -1.0},
            r"config.distiller.lambda_exp=-1.0 is out of range: "
            r"expected >= 0",
        ),
        (
            {"distiller__split_ratio": 1.0},
            r"split_ratio=1.0 is out of range: expected strictly "
            "between 0 and 1",
        ),
        (
            {"student__model": "resnet21"},
            r"config.student.model: Unknown model name 'resnet21'. "
            r"Valid names .*resnet20.* Did you mean 'resnet20'\?",
        ),
        (
            {"data__name": "mnist"},
            r"config.data.name='mnist' is out of range: expected one of "
            r"\['digits', 'cifar10'",
        ),
        (
            {"optimizer__milestones": (8, 20)},
            r"milestones=\(8, 20\) reach past "
            "config.teacher.epochs=15",
        ),
        (
            {"distillation_losses": ({"type": "kd", "kwargs": {"temperature": 0.0}},)},
            r"config.distillation_losses\[0\] .*temperature.*0",
        ),
        ({"mutual__temperature": -1.0}, r"config.mutual.temperature=-1.0 is out of range"),
        (
            {"optimizer__momentum": 1.5},
            r"config.optimizer.momentum=1.5 is out of range: expected between 0 and 1",
        ),
    ],
)
def test_config_errors_name_key_value_and_expectation(changes, message):
    with pytest.raises(ConfigError, match=message):
        validate_config(config_with(**changes))


def test_shipped_quickstart_config_is_valid():
    validate_config(quickstart.get_config())
    validate_config(quickstart.get_config("smoke"))


# 2. Model mismatches.
def test_spatial_mismatch_and_the_resize_option(teacher_and_encoder):
    teacher, encoder = teacher_and_encoder
    student = tiny_backbone(channels=6, name="big_student", input_shape=(16, 16, 3))
    with pytest.raises(
        ValueError,
        match=r"is 4x4 .*'big_student' features are 8x8.*"
        "resize_teacher_factor=True",
    ):
        Distiller(teacher, student, encoder)
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


def test_feature_map_too_narrow_to_split(teacher_and_encoder):
    teacher, encoder = teacher_and_encoder
    with pytest.raises(ValueError, match="feature map of 1 channels cannot be split"):
        Distiller(teacher, tiny_backbone(channels=1, name="narrow"), encoder)


# 3. Files.
def test_corrupted_checkpoint_is_detected(tmp_path):
    path = tmp_path / "teacher.keras"
    tiny_backbone().save(path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(
        ValueError,
        match=r"checkpoint .*teacher.keras' cannot be read: it is "
        "truncated, corrupted",
    ):
        load_two_output_model(path, "teacher")


def test_workdir_of_another_config_is_refused(tmp_path):
    prepare_workdir(tmp_path, quickstart.get_config())
    changed = config_with(distiller__lambda_inh=25.0, student__epochs=10)
    with pytest.raises(
        ValueError,
        match=r"different config \(recorded -> now: distiller.lambda_inh: 50.0 -> 25.0; "
        r"student.epochs: 15 -> 10\); use another --workdir, or pass --allow_config_change",
    ):
        prepare_workdir(tmp_path, changed)
    prepare_workdir(tmp_path, changed, allow_config_change=True)
    recorded = json.loads((tmp_path / "config.json").read_text())
    assert recorded["distiller"]["lambda_inh"] == 25.0


def test_unwritable_workdir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(PermissionError, match=r"The workdir '.*file/run' cannot be written"):
        prepare_workdir(blocker / "run", quickstart.get_config())


# 4. Data.
def test_labels_out_of_range():
    images = np.zeros((4, 4, 4, 1), "float32")
    with pytest.raises(
        ValueError,
        match=r"'bad' train label 12 \(example 2\) is out of range "
        "for 10 classes; expected 0 to 9",
    ):
        ImageData("bad", images, np.array([0, 1, 12, 3]), images, np.zeros(4), 10, (0.5,), (0.2,))


def test_non_finite_inputs():
    images = np.zeros((4, 4, 4, 1), "float32")
    broken = images.copy()
    broken[1, 0, 0, 0] = np.nan
    with pytest.raises(
        ValueError,
        match=r"'bad' test images hold non-finite values \(first at "
        "example 1\\)",
    ):
        ImageData("bad", images, np.zeros(4), broken, np.zeros(4), 10, (0.5,), (0.2,))


def test_batch_size_not_divisible_by_replicas(monkeypatch, tmp_path):
    from iekd_keras.experiment import train

    class ThreeReplicas:
        num_replicas_in_sync = 3

        def scope(self):
            return contextlib.nullcontext()

    monkeypatch.setattr(train, "make_strategy", lambda name: ThreeReplicas())
    config = quickstart.get_config("smoke")
    with pytest.raises(ValueError, match="config.batch_size=64 is not divisible by the 3 replicas"):
        train.train_and_evaluate(config, tmp_path, data=load_digits(8))


# 5. Training faults.
def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    model = tiny_backbone()
    trainer = StandaloneTrainer(model).compile(
        optimizer=CoupledWeightDecaySGD(0.01), run_eagerly=True
    )
    images, labels = tiny_batches(16)
    last = tmp_path / "last.keras"
    callbacks = [NonFiniteLossGuard("teacher"), StageCheckpoint(str(last))]
    trainer.fit(images, labels, batch_size=8, epochs=1, verbose=0, callbacks=callbacks)
    good = [w.copy() for w in model.get_weights()]
    poisoned = images.copy()
    poisoned[8:] = np.inf
    with pytest.raises(
        FloatingPointError,
        match=r"Stage 'teacher': the loss term '\w*loss' "
        r"became (nan|inf) at epoch 0 step 1",
    ):
        trainer.fit(
            poisoned, labels, batch_size=8, epochs=1, verbose=0, callbacks=callbacks, shuffle=False
        )
    restored = load_two_output_model(last, "teacher")
    for saved, kept in zip(restored.get_weights(), good, strict=True):
        np.testing.assert_array_equal(saved, kept)


def test_checkpoint_save_is_atomic(tmp_path, monkeypatch):
    model = tiny_backbone()
    trainer = StandaloneTrainer(model).compile(optimizer=CoupledWeightDecaySGD(0.01))
    images, labels = tiny_batches(8)
    last = tmp_path / "last.keras"
    trainer.fit(images, labels, epochs=1, verbose=0, callbacks=[StageCheckpoint(str(last))])
    before = last.read_bytes()

    def killed_mid_save(self, filepath, *args, **kwargs):
        Path(filepath).write_bytes(b"half a zip")
        raise KeyboardInterrupt("killed during save")

    monkeypatch.setattr(keras.Model, "save", killed_mid_save)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(images, labels, epochs=1, verbose=0, callbacks=[StageCheckpoint(str(last))])
    assert last.read_bytes() == before


# 6. The teacher sanity gate.
def test_weak_teacher_stops_the_run(tmp_path):
    from iekd_keras.experiment.train import train_and_evaluate

    config = quickstart.get_config("smoke")
    config.teacher.skip_sanity_check = False
    config.teacher.min_accuracy = 0.999
    config.data.image_size = 8
    config.teacher.model = "resnet8"
    config.verbose = 0
    with pytest.raises(
        ValueError,
        match=r"The teacher reaches \d+\.\d+% test accuracy, below "
        r"the sanity floor of 99.90% \(chance is 10.00%\)",
    ):
        train_and_evaluate(config, tmp_path, data=load_digits(8))
    assert (tmp_path / "teacher" / "last.keras").exists()
    assert not (tmp_path / "student").exists()


@pytest.fixture
def teacher_and_encoder():
    teacher = tiny_backbone(channels=8, name="teacher")
    autoencoder = FactorAutoencoder(4)
    autoencoder.build(teacher.outputs[1].shape)
    return teacher, autoencoder.encoder
