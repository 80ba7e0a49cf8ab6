"""Fits the Distiller and the FactorAutoencoderTrainer on one device and under MirroredStrategy.

Run by `test_mirrored_strategy.py` (`python -m tests.distillers.mirrored_strategy_check [CASE ...]
[--out FILE]`, see `tests/subprocess_checks.py`): TensorFlow's logical devices must be configured
before it initialises them, so the two logical CPUs live in this separate process, with one
thread each and op determinism (`deterministic_logical_cpus`), so that a loaded machine cannot
change a kernel's summation order and with it the one-device reference. Each case
builds one set of initial weights, fits a copy with no strategy (one device) and a copy under
`MirroredStrategy` over two logical CPUs on the same global batches (13 samples in batches of 8,
so the last batch of 5 splits 3 + 2), and compares the reported metrics (per epoch and per step)
and every final weight (`mirrored_fits.py`). Prints, or writes to `--out`, a JSON summary of the
largest relative differences.

BatchNormalization: every BatchNorm that runs in training mode is `synchronized=True`, so that it
normalises with global-batch statistics as one device does. The backbones are those of
`tiny_models.py` with `synchronized=True`. The Distiller's own student encoders get it through
`sync_batchnorm=True`. The frozen teacher and teacher encoder run in inference
mode, where synchronization changes nothing.
"""

import functools
import time

from tests.deterministic_cpus import deterministic_logical_cpus

DEVICES = deterministic_logical_cpus(2)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import ops  # noqa: E402

from iekd_keras import CoupledWeightDecaySGD, Distiller  # noqa: E402
from iekd_keras.distillers.autoencoder_trainer import FactorAutoencoderTrainer  # noqa: E402
from iekd_keras.distribute import replicas  # noqa: E402
from iekd_keras.layers import FactorAutoencoder  # noqa: E402
from tests.distillers.mirrored_fits import (  # noqa: E402
    BATCH_SIZE,
    SAMPLES,
    StepLogs,
    compare,
    fit_twice,
    record_fit,
)
from tests.distillers.tiny_models import tiny_backbone, tiny_batches  # noqa: E402
from tests.subprocess_checks import check_main  # noqa: E402


def build_distiller(p):
    keras.utils.set_random_seed(0)
    teacher = tiny_backbone(channels=8, name="teacher", synchronized=True)
    student = tiny_backbone(channels=6, name="student", synchronized=True)
    autoencoder = FactorAutoencoder(4, synchronized=True, name="teacher_autoencoder")
    autoencoder.build(teacher.outputs[1].shape)
    distiller = Distiller(teacher, student, autoencoder.encoder, p=p, sync_batchnorm=True)
    return distiller.compile(
        optimizer=CoupledWeightDecaySGD(learning_rate=0.05),
        metrics=["accuracy"],
        run_eagerly=False,
        jit_compile=False,
    )


def build_autoencoder_trainer(reconstruction):
    keras.utils.set_random_seed(0)
    teacher = tiny_backbone(channels=8, name="teacher", synchronized=True)
    autoencoder = FactorAutoencoder(4, synchronized=True, name="autoencoder")
    trainer = FactorAutoencoderTrainer(teacher, autoencoder, reconstruction=reconstruction)
    return trainer.compile(
        optimizer=CoupledWeightDecaySGD(learning_rate=0.05), run_eagerly=False, jit_compile=False
    )


def build_metrics_first(model, images, labels):
    """With no strategy Keras builds a Distiller's compiled metrics inside the first trace, which
    then runs twice; building them eagerly first saves that trace (fit resets their state)."""
    if isinstance(model, Distiller) and model.distribute_strategy.num_replicas_in_sync == 1:
        model.compute_metrics(images[:1], labels[:1], model(images[:1]), None)


def run_case(build, data, strategy):
    """Fits `build()` on one device and under `strategy`, from the same initial weights."""
    start = time.perf_counter()
    single, mirrored, initial = fit_twice(build, strategy, *data, prepare=build_metrics_first)
    result = compare(mirrored, single, initial)
    result["single_device_history"] = single["history"]
    result["seconds"] = time.perf_counter() - start
    return result, single, initial


def naive_sum_over_replicas(value):
    """The naive convention: a replica's share becomes its local mean (or distance) / replicas."""
    return ops.stop_gradient(value) * replicas.replica_count()


def run_naive_case(build, data, strategy, single, initial):
    """The mirrored fit again with `naive_sum_over_replicas`, against the same single run."""
    start = time.perf_counter()
    exact = replicas.sum_over_replicas
    replicas.sum_over_replicas = naive_sum_over_replicas
    try:
        with strategy.scope():
            model = build()
        model.set_weights(initial)
        mirrored = record_fit(model, *data, prepare=build_metrics_first)
    finally:
        replicas.sum_over_replicas = exact
    result = compare(mirrored, single, initial)
    result["seconds"] = time.perf_counter() - start
    return result


class SplitProbe(keras.Model):
    """Reports how many samples each replica gets in every step, as `size0` and `size1`."""

    def __init__(self):
        super().__init__(name="split_probe")
        self.dense = keras.layers.Dense(1)

    def call(self, inputs):
        return self.dense(inputs)

    def train_step(self, data):
        context = tf.distribute.get_replica_context()
        size = tf.cast(tf.shape(data[0])[0], "float32") * context.num_replicas_in_sync
        replica = context.replica_id_in_sync_group
        # fit() averages each log over the replicas: only replica i reports size{i}.
        return {f"size{i}": tf.where(tf.equal(replica, i), size, 0.0) for i in range(2)}


def replica_splits(strategy, count):
    """Samples per replica in each step of an epoch of `count` samples."""
    with strategy.scope():
        probe = SplitProbe()
        probe.compile(optimizer="sgd", run_eagerly=False)
    logs = StepLogs()
    x = np.zeros((count, 1), "float32")
    probe.fit(x, x, batch_size=BATCH_SIZE, shuffle=False, verbose=0, callbacks=[logs])
    return [[round(step["size0"]), round(step["size1"])] for step in logs.steps]


CASES = ("splits", "distiller_p1", "distiller_p2", "naive_distiller_p2", "autoencoder_l1")


def summarise(chosen):
    start = time.perf_counter()
    strategy = tf.distribute.MirroredStrategy(DEVICES)
    data = tiny_batches(SAMPLES)
    summary = {}
    if "splits" in chosen:
        summary["splits"] = replica_splits(strategy, SAMPLES)
    if "distiller_p1" in chosen:
        summary["distiller_p1"], _, _ = run_case(
            functools.partial(build_distiller, 1.0), data, strategy
        )
    if "distiller_p2" in chosen or "naive_distiller_p2" in chosen:
        build = functools.partial(build_distiller, 2.0)
        summary["distiller_p2"], single, initial = run_case(build, data, strategy)
        if "naive_distiller_p2" in chosen:
            summary["naive_distiller_p2"] = run_naive_case(build, data, strategy, single, initial)
    if "autoencoder_l1" in chosen:
        summary["autoencoder_l1"], _, _ = run_case(
            functools.partial(build_autoencoder_trainer, "l1"), data, strategy
        )
    summary["seconds"] = time.perf_counter() - start
    return summary


if __name__ == "__main__":
    check_main(__doc__, summarise, cases=CASES)
