"""Ctrl-C during training: never in the middle of a backup, and told with the stage and epoch."""

import contextlib
import json
import signal
import threading
from pathlib import Path

import keras


class StageInterrupted(KeyboardInterrupt):
    """A KeyboardInterrupt that names the stage, the epoch (1-based) it interrupted and how
    many whole epochs its backup holds.

    Example:
        >>> str(StageInterrupted("student", epoch=3, epochs=40, backed_up=2))
        "Interrupted in stage 'student' at epoch 3 of 40 (2 whole epochs backed up)"
    """

    def __init__(self, stage, epoch, epochs, backed_up=0):
        whole = f"{backed_up} whole epoch{'' if backed_up == 1 else 's'} backed up"
        super().__init__(f"Interrupted in stage {stage!r} at epoch {epoch} of {epochs} ({whole})")
        self.stage, self.epoch, self.epochs, self.backed_up = stage, epoch, epochs, backed_up


class EpochTracker(keras.callbacks.Callback):
    """Remembers the epoch in progress (0-based, as Keras counts; `initial_epoch` until the
    first epoch begins).

    Example:
        >>> tracker = EpochTracker(initial_epoch=2)
        >>> tracker.on_epoch_begin(3)
        >>> tracker.epoch
        3
    """

    def __init__(self, initial_epoch=0):
        super().__init__()
        self.epoch = initial_epoch

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch


@contextlib.contextmanager
def interrupts_deferred():
    """Holds Ctrl-C (SIGINT) back until the block ends, then raises it as usual.

    Only the main thread receives signals; elsewhere the block runs unchanged.

    Example:
        >>> with interrupts_deferred():
        ...     write_the_whole_file()  # a Ctrl-C now arrives after the file is complete
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received and callable(previous):
            previous(signal.SIGINT, received[0])
        elif received and previous == signal.SIG_DFL:
            signal.raise_signal(signal.SIGINT)


class InterruptSafeBackupAndRestore(keras.callbacks.BackupAndRestore):
    """BackupAndRestore whose saves a Ctrl-C cannot cut in half (a half-written
    training_metadata.json would stop the run from resuming).

    Example:
        >>> backup = InterruptSafeBackupAndRestore("runs/x/student/backup", delete_checkpoint=False)
    """

    def on_epoch_end(self, epoch, logs=None):
        with interrupts_deferred():
            super().on_epoch_end(epoch, logs)

    def on_train_batch_end(self, batch, logs=None):
        with interrupts_deferred():
            super().on_train_batch_end(batch, logs)


def backed_up_epochs(backup_dir):
    """Whole epochs a BackupAndRestore directory holds (0 when none can be read)."""
    try:
        return int(json.loads((Path(backup_dir) / "training_metadata.json").read_text())["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


@contextlib.contextmanager
def name_interruption(stage, tracker, epochs, backup_dir):
    """Turns a KeyboardInterrupt inside the block into a `StageInterrupted` for `stage`, at the
    epoch `tracker` last saw, with the whole epochs held in `backup_dir`.

    Example:
        >>> tracker = EpochTracker()
        >>> with name_interruption("teacher", tracker, epochs=15, backup_dir=backup):
        ...     model.fit(dataset, epochs=15, callbacks=[tracker, backup_and_restore])
    """
    try:
        yield
    except StageInterrupted:
        raise
    except KeyboardInterrupt as interrupt:
        backed_up = backed_up_epochs(backup_dir)
        raise StageInterrupted(stage, tracker.epoch + 1, epochs, backed_up) from interrupt
