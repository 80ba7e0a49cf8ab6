"""Callbacks of the training stages: checkpoints of the bare model, throughput in the logs."""

import math
import os
import time
from pathlib import Path

import keras
from keras import ops

from iekd_keras.batchnorm_sync import saved_without_sync


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
