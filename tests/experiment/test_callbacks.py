"""RestoredStateCheck: a resume goes on only from exactly the backed-up state."""

import json

import keras
import numpy as np
import pytest

from iekd_keras import StandaloneTrainer
from iekd_keras.experiment.callbacks import RestoredStateCheck
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
