"""Callbacks of the training stages: checkpoints of the bare model, throughput in the logs."""

import math
import os
import time
from pathlib import Path

import keras
from keras import ops

from iekd_keras.distribute.batchnorm_sync import saved_without_sync


class StageCheckpoint(keras.callbacks.ModelCheckpoint):
    """`ModelCheckpoint` that saves what the stage is for, never the teacher, atomically.

    A trainer's `checkpoint_model` (the Distiller's student, the auto-encoder, ...) is saved in
    place of the trainer itself; a plain model is saved as ModelCheckpoint would. Each save goes
    to a temporary file that then replaces `filepath`, so a kill during a save leaves the
    previous checkpoint intact. Saves once per epoch.

    Args:
        filepath: the checkpoint file.
        select: optional function of the trainer returning the model to save (e.g. one peer of
            a MutualDistiller); by default the trainer's `checkpoint_model`.
        **kwargs: any `keras.callbacks.ModelCheckpoint` argument.

    Example:
        >>> StageCheckpoint("best.keras", monitor="val_accuracy", save_best_only=True)
    """

    def __init__(self, filepath, select=None, **kwargs):
        self.select = select
        self.final_path = Path(filepath)
        temporary = self.final_path.with_name(
            f".{self.final_path.stem}.tmp{self.final_path.suffix}"
        )
        super().__init__(str(temporary), **kwargs)

    def set_model(self, model):
        if self.select is not None:
            model = self.select(model)
        super().set_model(getattr(model, "checkpoint_model", model))

    def on_epoch_end(self, epoch, logs=None):
        with saved_without_sync(self.model):
            super().on_epoch_end(epoch, logs)
        temporary = Path(self.filepath)
        if temporary.exists():
            os.replace(temporary, self.final_path)


class NonFiniteLossGuard(keras.callbacks.Callback):
    """Stops training at the first non-finite loss term, naming the step and the term.

    Raised from the batch that produced it, before the epoch's checkpoints are written, so the
    last good checkpoint stays the newest one.
    """

    def __init__(self, stage):
        super().__init__()
        self.stage = stage
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        for name, value in (logs or {}).items():
            value = float(ops.convert_to_numpy(value))
            if not math.isfinite(value):
                raise FloatingPointError(
                    f"Stage {self.stage!r}: the loss term {name!r} became {value} at epoch "
                    f"{self._epoch} step {batch}. Training stopped; the last checkpoint of the "
                    "previous epoch is intact. Lower the learning rate or check the inputs."
                )


class ThroughputLogger(keras.callbacks.Callback):
    """Adds `images_per_second` (training only, validation excluded) and the epoch's
    `learning_rate` (at its first step) to each epoch's logs.

    Place it before TensorBoard and CSVLogger so that they record both.

    Args:
        examples_per_epoch: images seen per training epoch.
    """

    def __init__(self, examples_per_epoch):
        super().__init__()
        self.examples_per_epoch = examples_per_epoch
        self._start = None
        self._training_end = None
        self._learning_rate = None

    def on_epoch_begin(self, epoch, logs=None):
        self._learning_rate = float(ops.convert_to_numpy(self.model.optimizer.learning_rate))
        self._training_end = None
        self._start = time.perf_counter()

    def on_test_begin(self, logs=None):
        # Validation inside fit() is not training time.
        if self._start is not None and self._training_end is None:
            self._training_end = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        elapsed = (self._training_end or time.perf_counter()) - self._start
        logs["images_per_second"] = self.examples_per_epoch / max(elapsed, 1e-9)
        logs["learning_rate"] = self._learning_rate


class RestoredStateCheck(keras.callbacks.Callback):
    """Checks, right after `BackupAndRestore` restored a backup, that the training state is
    exactly the backup's: every variable of the model (its optimizer's iteration count and
    slots included) and an iteration count that matches the backed-up epoch.

    Keras's `BackupAndRestore` loads the optimizer's variables by position; an optimizer built
    on other variables, or in another order, would resume silently from a wrong state. Put this
    callback AFTER the `BackupAndRestore` it checks. It saves the restored state once to a
    temporary file beside the backup and compares the two files array by array; on a mismatch
    it stops before any training step, leaving the backup untouched.

    Args:
        backup_dir: the `BackupAndRestore` directory.
        steps_per_epoch: the optimizer steps of one epoch.

    Example:
        >>> callbacks = [BackupAndRestore(backup_dir), RestoredStateCheck(backup_dir, steps)]
    """

    WEIGHTS = "latest.weights.h5"
    METADATA = "training_metadata.json"

    def __init__(self, backup_dir, steps_per_epoch):
        super().__init__()
        self.backup_dir = Path(backup_dir)
        self.steps_per_epoch = int(steps_per_epoch)
        self.checked_epoch = None

    def on_train_begin(self, logs=None):
        weights, metadata = self.backup_dir / self.WEIGHTS, self.backup_dir / self.METADATA
        if not (weights.exists() and metadata.exists()):
            return
        import json

        epoch = int(json.loads(metadata.read_text())["epoch"])
        optimizer = self.model.optimizer
        iterations = int(ops.convert_to_numpy(optimizer.iterations))
        expected = epoch * self.steps_per_epoch
        # Dynamic loss scaling skips the update (and its count) of a step with non-finite
        # gradients, so the count may then fall short of the steps taken, never exceed them.
        skips_steps = _has_loss_scaling(optimizer)
        if iterations > expected or (iterations < expected and not skips_steps):
            raise RuntimeError(
                f"The backup in {str(self.backup_dir)!r} is at the end of epoch {epoch} "
                f"({epoch} x {self.steps_per_epoch} steps = {expected}) but "
                f"the restored optimizer {optimizer.name!r} has iterations={iterations}. The "
                "backup is left as it is; check that the stage's config (batch size, dataset) "
                "matches the run that wrote it."
            )
        restored = self.backup_dir / "restored_state_check.weights.h5"
        try:
            self.model.save_weights(str(restored), overwrite=True)
            difference = _first_difference(weights, restored, _optimizer_names(optimizer))
        finally:
            restored.unlink(missing_ok=True)
        if difference is not None:
            raise RuntimeError(
                f"Restoring the backup in {str(self.backup_dir)!r} did not reproduce its state: "
                f"{difference}. The backup is left as it is; the model or its optimizer was "
                "built differently from the run that wrote it (variables load by position)."
            )
        self.checked_epoch = epoch


def _has_loss_scaling(optimizer):
    inner = getattr(optimizer, "optimizers", None) or [optimizer]
    return any(isinstance(o, keras.optimizers.LossScaleOptimizer) for o in inner)


def _optimizer_names(optimizer):
    """Weights-file names of the optimizer's variables (saved by position), by variable path."""
    return {f"optimizer/vars/{i}": v.path for i, v in enumerate(optimizer.variables)}


def _first_difference(expected_path, actual_path, names=None):
    """The first array that differs between two Keras weights files, described; else None.
    `names` maps weights-file names to readable ones (e.g. optimizer slots' paths)."""
    import h5py
    import numpy as np

    def arrays(path):
        found = {}
        with h5py.File(path, "r") as handle:
            handle.visititems(
                lambda name, item: (
                    found.__setitem__(name, item[()]) if isinstance(item, h5py.Dataset) else None
                )
            )
        return found

    expected, actual = arrays(expected_path), arrays(actual_path)
    if sorted(expected) != sorted(actual):
        missing = sorted(set(expected) ^ set(actual))
        return f"the saved variables differ in {missing[:5]}"
    for name in sorted(expected):
        if not np.array_equal(expected[name], actual[name]):
            gap = np.max(np.abs(np.asarray(actual[name], "float64") - expected[name]))
            readable = f" ({names[name]})" if names and name in names else ""
            return (
                f"{name!r}{readable}, shape {np.shape(expected[name])}, differs from the backup "
                f"by up to {gap:.3g}"
            )
    return None
