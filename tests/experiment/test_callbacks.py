"""The stage callbacks: a resume goes on only from exactly the backed-up state
(RestoredStateCheck), a non-finite loss stops the stage (NonFiniteLossGuard) and a checkpoint is
replaced whole or not at all (StageCheckpoint)."""

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from iekd_keras import CoupledWeightDecaySGD, StandaloneTrainer
from iekd_keras.experiment.callbacks import (
    NonFiniteLossGuard,
    RestoredStateCheck,
    StageCheckpoint,
)
from iekd_keras.experiment.evaluation import load_two_output_model
from tests.distillers.tiny_models import tiny_backbone, tiny_batches

pytestmark = pytest.mark.backend_agnostic

STEPS = 2


def trainer():
    keras.utils.set_random_seed(0)
    model = StandaloneTrainer(tiny_backbone())
    return model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))


def fit(model, backup_dir, epochs, between=()):
    images, labels = tiny_batches(8 * STEPS)
    check = RestoredStateCheck(backup_dir, STEPS)
    backup = keras.callbacks.BackupAndRestore(str(backup_dir), delete_checkpoint=False)
    model.fit(
        images, labels, batch_size=8, epochs=epochs, verbose=0, callbacks=[backup, *between, check]
    )
    return check


def test_a_faithful_restore_passes_and_training_goes_on(tmp_path):
    assert fit(trainer(), tmp_path, epochs=1).checked_epoch is None  # nothing to restore
    resumed = trainer()
    assert fit(resumed, tmp_path, epochs=2).checked_epoch == 1
    assert int(resumed.optimizer.iterations) == 2 * STEPS


class DropMomentum(keras.callbacks.Callback):
    """Stands for a restore that loaded an optimizer slot into the wrong place."""

    def on_train_begin(self, logs=None):
        slot = next(v for v in self.model.optimizer.variables if "momentum" in v.path)
        slot.assign(np.zeros(slot.shape, "float32"))


def test_a_slot_that_does_not_match_the_backup_stops_the_run(tmp_path):
    fit(trainer(), tmp_path, epochs=1)
    before = (tmp_path / "latest.weights.h5").read_bytes()
    resumed = trainer()
    with pytest.raises(
        RuntimeError,
        match=r"did not reproduce its state: 'optimizer/vars/\d+' \(.*momentum.*\), shape",
    ):
        fit(resumed, tmp_path, epochs=2, between=[DropMomentum()])
    assert int(resumed.optimizer.iterations) == STEPS  # no step was taken
    assert (tmp_path / "latest.weights.h5").read_bytes() == before  # the backup is intact
    assert not (tmp_path / "restored_state_check.weights.h5").exists()


def test_an_iteration_count_that_does_not_match_the_epoch_stops_the_run(tmp_path):
    fit(trainer(), tmp_path, epochs=1)
    (tmp_path / "training_metadata.json").write_text(json.dumps({"epoch": 2, "batch": 0}))
    with pytest.raises(RuntimeError, match=r"end of epoch 2 \(2 x 2 steps = 4\).*iterations=2"):
        fit(trainer(), tmp_path, epochs=3)


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
