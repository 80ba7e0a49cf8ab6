"""Fits the Distiller and the FactorAutoencoderTrainer on one device and under MirroredStrategy.

Run as a script by `test_mirrored_strategy.py`: TensorFlow's logical devices must be configured
before it initialises them, so the two logical CPUs live in this separate process, with one
thread each and op determinism (`deterministic_logical_cpus`), so that a loaded machine cannot
change a kernel's summation order and with it the one-device reference. Each case
builds one set of initial weights, fits a copy with no strategy (one device) and a copy under
`MirroredStrategy` over two logical CPUs on the same global batches (13 samples in batches of 8,
so the last batch of 5 splits 3 + 2), and compares the reported metrics (per epoch and per step)
and every final weight. Prints, or writes to `--out`, a JSON summary of the largest relative
differences.

BatchNormalization: every BatchNorm that runs in training mode is `synchronized=True`, so that it
normalises with global-batch statistics as one device does. The backbones are those of
`tiny_models.py` with synchronized BN. The Distiller's own student encoders get it through
`sync_batchnorm=True`. The frozen teacher and teacher encoder run in inference
mode, where synchronization changes nothing.
"""

import argparse
import functools
import json
import os
import sys
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)
sys.path.insert(0, os.path.dirname(os.path.dirname(_HERE)))

from tests.deterministic_cpus import deterministic_logical_cpus  # noqa: E402

DEVICES = deterministic_logical_cpus(2)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import ops  # noqa: E402
from tiny_models import tiny_batches  # noqa: E402

from iekd_keras import CoupledWeightDecaySGD, Distiller  # noqa: E402
from iekd_keras.distillers.autoencoder_trainer import FactorAutoencoderTrainer  # noqa: E402
from iekd_keras.distribute import replicas  # noqa: E402
from iekd_keras.layers import FactorAutoencoder  # noqa: E402

SAMPLES = 13  # batches of 8 and 5: per replica 4 + 4, then an uneven 3 + 2
BATCH_SIZE = 8
EPOCHS = 2
WEIGHT_SCALE_FLOOR = 1e-2


def sync_tiny_backbone(num_classes=3, channels=8, name="tiny", input_shape=(8, 8, 3)):
    """`tiny_models.tiny_backbone` with synchronized BatchNorm."""
    inputs = keras.Input(input_shape, name="images")
    x = keras.layers.Conv2D(channels, 3, strides=2, padding="same", name="conv")(inputs)
    x = keras.layers.BatchNormalization(momentum=0.9, synchronized=True, name="bn")(x)
    features = keras.layers.ReLU(name="features")(x)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(features)
    logits = keras.layers.Dense(num_classes, name="logits")(pooled)
    return keras.Model(inputs, [logits, features], name=name)


def build_distiller(p):
    keras.utils.set_random_seed(0)
    teacher = sync_tiny_backbone(channels=8, name="teacher")
    student = sync_tiny_backbone(channels=6, name="student")
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
    teacher = sync_tiny_backbone(channels=8, name="teacher")
    autoencoder = FactorAutoencoder(4, synchronized=True, name="autoencoder")
    trainer = FactorAutoencoderTrainer(teacher, autoencoder, reconstruction=reconstruction)
    return trainer.compile(
        optimizer=CoupledWeightDecaySGD(learning_rate=0.05), run_eagerly=False, jit_compile=False
    )


class _BatchLogs(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.logs = []

    def on_train_batch_end(self, batch, logs=None):
        self.logs.append({k: float(v) for k, v in (logs or {}).items()})


def _fit(model, data):
    images, labels = data
    if isinstance(model, Distiller) and model.distribute_strategy.num_replicas_in_sync == 1:
        # With no strategy Keras builds the compiled metrics inside the first trace, which then
        # runs twice; building them eagerly first saves that trace (fit resets their state).
        model.compute_metrics(images[:1], labels[:1], model(images[:1]), None)
    batch_logs = _BatchLogs()
    history = model.fit(
        images,
        labels,
        batch_size=BATCH_SIZE,
        epochs=EPOCHS,
        shuffle=False,
        verbose=0,
        callbacks=[batch_logs],
    )
    return {
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
        "batches": batch_logs.logs,
        "weights": [np.asarray(ops.convert_to_numpy(v), "float64") for v in model.weights],
        "paths": [v.path for v in model.weights],
        "trainable": [v.path for v in model.trainable_weights],
        "replicas": model.distribute_strategy.num_replicas_in_sync,
    }


def _relative(a, b, floor):
    """max |a - b| / max(max |b|, floor): the largest difference relative to b's scale."""
    a, b = np.asarray(a, "float64"), np.asarray(b, "float64")
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), floor))


def _compare(mirrored, single):
    """Largest relative differences of the mirrored run from the single-device one.

    A metric is compared over all epochs (or steps) at once. Each weight tensor is compared to its
    own scale, floored at WEIGHT_SCALE_FLOOR: a conv bias followed by BatchNorm has a zero gradient
    in exact arithmetic and holds only float noise (~1e-8), which is no scale to divide by.
    """
    if mirrored["paths"] != single["paths"]:
        raise AssertionError("the two copies do not list their weights in the same order")
    names = sorted(single["history"])
    if sorted(mirrored["history"]) != names:
        raise AssertionError(f"{sorted(mirrored['history'])} != {names}")
    pairs = list(zip(single["paths"], mirrored["weights"], single["weights"], strict=True))
    per_weight = {path: _relative(m, s, WEIGHT_SCALE_FLOOR) for path, m, s in pairs}
    trainable = {path: per_weight[path] for path in single["trainable"]}
    # A per-step accuracy log is Keras's mean of the replicas' running accuracies, not the global
    # one, when the replicas hold different numbers of samples; the per-epoch value is global.
    term_names = [k for k in names if k != "accuracy"]
    return {
        "replicas": mirrored["replicas"],
        "steps": len(mirrored["batches"]),
        "metrics": {
            k: _relative(mirrored["history"][k], single["history"][k], 1e-6) for k in names
        },
        "step_metrics": {
            k: _relative(
                [logs[k] for logs in mirrored["batches"]],
                [logs[k] for logs in single["batches"]],
                1e-6,
            )
            for k in term_names
        },
        "trainable_weights": max(trainable.values()),
        "worst_trainable_weight": max(trainable, key=trainable.get),
        "all_weights": max(per_weight.values()),
        "max_abs_weight_difference": max(float(np.max(np.abs(m - s))) for _, m, s in pairs),
    }


def run_case(build, data, strategy):
    """Fits `build()` on one device and under `strategy`, from the same initial weights."""
    start = time.perf_counter()
    single_model = build()
    initial = single_model.get_weights()
    with strategy.scope():
        mirrored_model = build()
    mirrored_model.set_weights(initial)
    single = _fit(single_model, data)
    mirrored = _fit(mirrored_model, data)
    result = _compare(mirrored, single)
    # How far training moved the weights: agreement must not be agreement on doing nothing.
    result["max_abs_weight_update"] = max(
        float(np.max(np.abs(after - before)))
        for after, before in zip(single["weights"], initial, strict=True)
    )
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
        mirrored = _fit(model, data)
    finally:
        replicas.sum_over_replicas = exact
    result = _compare(mirrored, single)
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
    logs = _BatchLogs()
    x = np.zeros((count, 1), "float32")
    probe.fit(x, x, batch_size=BATCH_SIZE, shuffle=False, verbose=0, callbacks=[logs])
    return [[round(step["size0"]), round(step["size1"])] for step in logs.logs]


CASES = ("splits", "distiller_p1", "distiller_p2", "naive_distiller_p2", "autoencoder_l1")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", help=f"any of {CASES} (default: all)")
    parser.add_argument("--out", help="write the JSON summary here instead of stdout")
    args = parser.parse_args()
    chosen = args.cases or CASES
    unknown = sorted(set(chosen) - set(CASES))
    if unknown:
        parser.error(f"unknown cases {unknown}; expected any of {CASES}")

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
    text = json.dumps(summary, indent=1, sort_keys=True)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
