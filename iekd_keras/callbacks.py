"""Callbacks of the training stages: checkpoints of the bare model, throughput in the logs."""

import time

import keras
from keras import ops


class StageCheckpoint(keras.callbacks.ModelCheckpoint):
    """`ModelCheckpoint` that saves what the stage is for, never the teacher.

    A trainer's `checkpoint_model` (the Distiller's student, the auto-encoder, ...) is saved in
    place of the trainer itself; a plain model is saved as ModelCheckpoint would.

    Example:
        >>> StageCheckpoint("best.keras", monitor="val_accuracy", save_best_only=True)
    """

    def set_model(self, model):
        super().set_model(getattr(model, "checkpoint_model", model))


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
