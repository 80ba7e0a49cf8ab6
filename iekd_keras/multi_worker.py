"""Multi-worker training helpers: who the chief is, and the local view of a distributed batch."""

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
