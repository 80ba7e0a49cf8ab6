"""Multi-worker training helpers: who the chief is, and the local view of a distributed batch."""

import contextlib
import json
import os

import keras


def in_multi_worker_mode(strategy=None):
    """True when `strategy` (default: the current one) is a MultiWorkerMirroredStrategy that
    spans several workers."""
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    strategy = strategy or tf.distribute.get_strategy()
    return (
        isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
        and strategy.extended._in_multi_worker_mode()
    )


def first_local_batch(epoch_iterator, strategy):
    """One batch of a Keras epoch iterator, with distributed values replaced by their first
    local component: what Keras's symbolic build needs to trace shapes."""
    import tensorflow as tf

    for _, _, iterator in epoch_iterator:
        batch = next(iterator)
        break
    else:
        return None

    def local(value):
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.experimental_local_results(value)[0]
        return value

    return keras.tree.map_structure(local, batch)


def task():
    """(task type, task index) from TF_CONFIG; ("worker", 0) without a cluster."""
    config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    current = config.get("task", {})
    return current.get("type", "worker"), int(current.get("index", 0))


def is_chief():
    """The chief writes checkpoints, logs, results and exports: the task of type "chief", or
    worker 0 when the cluster names no chief."""
    config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    task_type, index = task()
    if "chief" in config.get("cluster", {}):
        return task_type == "chief"
    return task_type == "worker" and index == 0


class WorkerLostError(RuntimeError):
    """A worker of a multi-worker run stopped; the run can resume from its last backup."""


@contextlib.contextmanager
def reraise_lost_worker(stage, backup_dir):
    """Turns TensorFlow's aborted collectives after a worker dies into one `WorkerLostError`
    that says which worker stopped, where the backup is and how to resume.

    When a worker dies, TensorFlow's coordination service stops receiving its heartbeats and
    aborts the collective operations of the others, which then fail with UnavailableError (or
    Aborted / Cancelled / DeadlineExceeded) instead of waiting forever. Outside multi-worker
    mode this changes nothing.

    Example:
        >>> with reraise_lost_worker("student", workdir / "student" / "backup"):
        ...     trainer.fit(dataset, callbacks=[backup_and_restore])
    """
    if not in_multi_worker_mode():
        yield
        return
    import tensorflow as tf

    lost = (
        tf.errors.UnavailableError,
        tf.errors.AbortedError,
        tf.errors.CancelledError,
        tf.errors.DeadlineExceededError,
    )
    try:
        yield
    except lost as error:
        lines = [line.strip() for line in str(error.message).splitlines() if line.strip()]
        unhealthy = [i for i, line in enumerate(lines) if "unhealthy" in line]
        if unhealthy:
            reason = " ".join(lines[unhealthy[0] : unhealthy[0] + 2])
        else:
            reason = lines[-1] if lines else type(error).__name__
        raise WorkerLostError(
            f"Stage {stage!r}: the multi-worker run lost a worker ({type(error).__name__}: "
            f"{reason}). Every worker must be running. This worker's last whole epoch is "
            f"backed up in {str(backup_dir)!r}: start every worker again with the same command "
            "to resume from it."
        ) from error
