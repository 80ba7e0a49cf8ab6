"""Fits the MutualDistiller on one device and under MirroredStrategy over two logical CPUs.

Run as a script by `test_mutual_distiller.py`, because TensorFlow's logical devices must be set
up before TensorFlow initialises them; `deterministic_logical_cpus` also gives them one thread
each and op determinism, so that every process computes the same bits however loaded the
machine is. For each case one set of initial weights is fitted twice on the same global
batches: with no strategy, and under `MirroredStrategy` over the two logical CPUs. 13 samples in
batches of 8 make every epoch end with a batch of 5 that the replicas split 3 + 2. Every
BatchNorm that trains is synchronized (the peers here, the encoders and auto-encoders through
`sync_batchnorm=True`), so both runs normalise with global-batch statistics. Writes a JSON
summary (to `--out`, else stdout) of the largest relative differences of the per-epoch metrics,
the per-step loss terms (and peer 1's terms of the first step, computed before any update) and
every final weight and optimizer variable.

The two runs still sum in different orders (a replica sums 3 samples, one device 5), so they
differ by float rounding, ~1e-7. Squared-error terms ("alternating_autoencoder_mse") keep that
difference at the rounding scale. With the L1 defaults ("alternating_autoencoder") the IE
distances and the reconstruction error have a sign for gradient: an element whose error is
within rounding of 0 can take the other sign in one run, which moves a weight by a whole
learning-rate step and can grow the difference a thousandfold within the 4 steps.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from tests.deterministic_cpus import deterministic_logical_cpus  # noqa: E402

DEVICES = deterministic_logical_cpus(2)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import ops  # noqa: E402

from iekd_keras.distillers.mutual_distiller import MutualDistiller  # noqa: E402
from iekd_keras.optimizers.coupled_weight_decay_sgd import CoupledWeightDecaySGD  # noqa: E402

SAMPLES, BATCH_SIZE, EPOCHS = 13, 8, 2
CASES = {
    "alternating_autoencoder": {"update": "alternating", "lambda_inh": 5.0, "lambda_exp": 5.0},
    "alternating_autoencoder_mse": {
        "update": "alternating",
        "lambda_inh": 5.0,
        "lambda_exp": 5.0,
        "p": 2.0,
        "reconstruction": "mse",
    },
    "simultaneous_inheritance_p2": {
        "update": "simultaneous",
        "peer_factor": "inheritance",
        "lambda_inh": 5.0,
        "lambda_exp": 5.0,
        "p": 2.0,
        "split_mode": "random",
        "split_seed": 3,
    },
    "alternating_dml_t4": {"update": "alternating", "temperature": 4.0, "kl_weight": 0.5},
}


def synced_backbone(channels, name):
    """[logits, features] model: conv, synchronized BN, ReLU (the features), GAP, dense."""
    images = keras.Input((8, 8, 3), name="images")
    x = keras.layers.Conv2D(channels, 3, strides=2, padding="same", name="conv")(images)
    x = keras.layers.BatchNormalization(momentum=0.9, synchronized=True, name="bn")(x)
    features = keras.layers.ReLU(name="features")(x)
    logits = keras.layers.Dense(3, name="logits")(
        keras.layers.GlobalAveragePooling2D(name="pool")(features)
    )
    return keras.Model(images, [logits, features], name=name)


def build(settings):
    keras.utils.set_random_seed(0)
    mutual = MutualDistiller(
        synced_backbone(8, "peer_a"),
        synced_backbone(6, "peer_b"),
        factor_channels=4,
        sync_batchnorm=True,
        **settings,
    )
    return mutual.compile(
        optimizer=CoupledWeightDecaySGD(0.05),
        metrics=["accuracy"],
        run_eagerly=False,
        jit_compile=False,
    )


class StepLogs(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.steps = []

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append({name: float(value) for name, value in (logs or {}).items()})


def fit(model, images, labels):
    steps = StepLogs()
    history = model.fit(
        images,
        labels,
        batch_size=BATCH_SIZE,
        epochs=EPOCHS,
        shuffle=False,
        verbose=0,
        callbacks=[steps],
    )
    return {
        "history": {name: list(map(float, values)) for name, values in history.history.items()},
        "steps": steps.steps,
        "weights": [np.asarray(ops.convert_to_numpy(w), "float64") for w in model.weights],
        "weight_paths": [w.path for w in model.weights],
        "optimizer": [
            np.asarray(ops.convert_to_numpy(v), "float64") for v in model.optimizer.variables
        ],
        "optimizer_paths": [v.path for v in model.optimizer.variables],
        "replicas": model.distribute_strategy.num_replicas_in_sync,
    }


def relative(a, b, floor):
    a, b = np.asarray(a, "float64"), np.asarray(b, "float64")
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), floor))


def run_case(settings, strategy, images, labels):
    start = time.perf_counter()
    single_model = build(settings)
    initial = single_model.get_weights()
    with strategy.scope():
        mirrored_model = build(settings)
    mirrored_model.set_weights(initial)
    single = fit(single_model, images, labels)
    mirrored = fit(mirrored_model, images, labels)
    names = sorted(single["history"])
    # A per-step accuracy is Keras's mean over replicas of their running accuracies: only the
    # per-epoch accuracy is global. The loss terms are global at every step.
    terms = [name for name in names if not name.endswith("accuracy")]
    # Peer 1's terms of the first step come from the initial weights, before any update.
    first_terms = [name for name in terms if name.startswith("peer1_")]
    # A conv bias before BatchNorm only holds float noise: floor each weight's scale at 1e-2.
    weights = {
        path: relative(m, s, 1e-2)
        for path, m, s in zip(
            single["weight_paths"], mirrored["weights"], single["weights"], strict=True
        )
    }
    slots = {
        path: relative(m, s, 1e-2)
        for path, m, s in zip(
            single["optimizer_paths"], mirrored["optimizer"], single["optimizer"], strict=True
        )
    }
    return {
        "replicas": mirrored["replicas"],
        "steps": len(mirrored["steps"]),
        "metric_names": names,
        "metrics": {
            name: relative(mirrored["history"][name], single["history"][name], 1e-6)
            for name in names
        },
        "step_terms": {
            name: relative(
                [step[name] for step in mirrored["steps"]],
                [step[name] for step in single["steps"]],
                1e-6,
            )
            for name in terms
        },
        "before_first_update": {
            name: relative(mirrored["steps"][0][name], single["steps"][0][name], 1e-6)
            for name in first_terms
        },
        "weights": max(weights.values()),
        "worst_weight": max(weights, key=weights.get),
        "optimizer_variables": max(slots.values()),
        "worst_optimizer_variable": max(slots, key=slots.get),
        "max_abs_weight_update": max(
            float(np.max(np.abs(after - before)))
            for after, before in zip(single["weights"], initial, strict=True)
        ),
        "seconds": time.perf_counter() - start,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", help=f"any of {sorted(CASES)} (default: all)")
    parser.add_argument("--out", help="write the JSON summary here instead of stdout")
    args = parser.parse_args()
    unknown = sorted(set(args.cases) - set(CASES))
    if unknown:
        parser.error(f"unknown cases {unknown}; expected any of {sorted(CASES)}")
    strategy = tf.distribute.MirroredStrategy(DEVICES)
    rng = np.random.default_rng(0)
    images = rng.normal(size=(SAMPLES, 8, 8, 3)).astype("float32")
    labels = rng.integers(0, 3, size=(SAMPLES,)).astype("int32")
    summary = {
        name: run_case(CASES[name], strategy, images, labels) for name in args.cases or CASES
    }
    text = json.dumps(summary, indent=1, sort_keys=True)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
