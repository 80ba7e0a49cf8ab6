"""One fit on one device and one under a MirroredStrategy, from the same weights, compared.

Shared by the checks `mirrored_strategy_check.py` and `mutual_strategy_check.py`, which import it
after `deterministic_logical_cpus` has set up their devices. Both fit 2 epochs of 13 samples in
batches of 8, so every epoch ends with a batch of 5 that two replicas split 3 + 2.

Example:
    >>> single, mirrored, initial = fit_twice(build, strategy, *tiny_batches(SAMPLES))
    >>> compare(mirrored, single, initial)["weights"]  # largest relative difference of a weight
"""

import keras
import numpy as np
from keras import ops

SAMPLES = 13  # batches of 8 and 5: per replica 4 + 4, then an uneven 3 + 2
BATCH_SIZE = 8
EPOCHS = 2
# A conv bias followed by BatchNorm has a zero gradient in exact arithmetic and holds only float
# noise (~1e-8), which is no scale to divide by: each weight's scale is floored here.
WEIGHT_SCALE_FLOOR = 1e-2
METRIC_SCALE_FLOOR = 1e-6


class StepLogs(keras.callbacks.Callback):
    """The logs of every training step."""

    def __init__(self):
        super().__init__()
        self.steps = []

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append({name: float(value) for name, value in (logs or {}).items()})


def record_fit(model, images, labels, prepare=None):
    """Fits `model` (no shuffling) and records its logs, weights and optimizer variables.

    `prepare(model, images, labels)`, when given, runs first.
    """
    if prepare is not None:
        prepare(model, images, labels)
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

    def values(variables):
        return [np.asarray(ops.convert_to_numpy(v), "float64") for v in variables]

    return {
        "history": {name: list(map(float, values)) for name, values in history.history.items()},
        "steps": steps.steps,
        "weights": values(model.weights),
        "weight_paths": [v.path for v in model.weights],
        "trainable_paths": [v.path for v in model.trainable_weights],
        "optimizer": values(model.optimizer.variables),
        "optimizer_paths": [v.path for v in model.optimizer.variables],
        "replicas": model.distribute_strategy.num_replicas_in_sync,
    }


def fit_twice(build, strategy, images, labels, prepare=None):
    """`build()` fitted with no strategy and, from the same initial weights, under `strategy`.

    Returns the two records (see `record_fit`) and the initial weights.
    """
    single_model = build()
    initial = single_model.get_weights()
    with strategy.scope():
        mirrored_model = build()
    mirrored_model.set_weights(initial)
    single = record_fit(single_model, images, labels, prepare)
    mirrored = record_fit(mirrored_model, images, labels, prepare)
    return single, mirrored, initial


def relative(a, b, floor):
    """max |a - b| / max(max |b|, floor): the largest difference relative to b's scale."""
    a, b = np.asarray(a, "float64"), np.asarray(b, "float64")
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), floor))


def _largest(differences, name):
    worst = max(differences, key=differences.get)
    return {name: differences[worst], f"worst_{name[:-1]}": worst}


def compare(mirrored, single, initial, before_first_update=lambda name: True):
    """Largest relative differences of the mirrored fit from the one-device fit.

    A metric is compared over all epochs at once ("metrics"), a loss term over all steps
    ("step_terms"): a per-step accuracy is Keras's mean over the replicas of their running
    accuracies, not the global one, so only the per-epoch accuracy is compared. The first step's
    terms for which `before_first_update(name)` holds come from the initial weights alone
    ("before_first_update"). Each weight and optimizer variable is compared to its own scale.
    """
    if mirrored["weight_paths"] != single["weight_paths"]:
        raise AssertionError("the two copies do not list their weights in the same order")
    names = sorted(single["history"])
    if sorted(mirrored["history"]) != names:
        raise AssertionError(f"{sorted(mirrored['history'])} != {names}")
    terms = [name for name in names if not name.endswith("accuracy")]
    weight_pairs = list(
        zip(single["weight_paths"], mirrored["weights"], single["weights"], strict=True)
    )
    weights = {path: relative(m, s, WEIGHT_SCALE_FLOOR) for path, m, s in weight_pairs}
    trainable = {path: weights[path] for path in single["trainable_paths"]}
    slots = {
        path: relative(m, s, WEIGHT_SCALE_FLOOR)
        for path, m, s in zip(
            single["optimizer_paths"], mirrored["optimizer"], single["optimizer"], strict=True
        )
    }

    def over_steps(name, steps):
        return relative(
            [step[name] for step in mirrored["steps"][steps]],
            [step[name] for step in single["steps"][steps]],
            METRIC_SCALE_FLOOR,
        )

    return {
        "replicas": mirrored["replicas"],
        "steps": len(mirrored["steps"]),
        "metric_names": names,
        "metrics": {
            name: relative(mirrored["history"][name], single["history"][name], METRIC_SCALE_FLOOR)
            for name in names
        },
        "step_terms": {name: over_steps(name, slice(None)) for name in terms},
        "before_first_update": {
            name: over_steps(name, slice(0, 1)) for name in terms if before_first_update(name)
        },
        **_largest(weights, "weights"),
        **_largest(trainable, "trainable_weights"),
        **_largest(slots, "optimizer_variables"),
        "max_abs_weight_difference": max(float(np.max(np.abs(m - s))) for _, m, s in weight_pairs),
        # How far training moved the weights: agreement must not be agreement on doing nothing.
        "max_abs_weight_update": max(
            float(np.max(np.abs(after - before)))
            for after, before in zip(single["weights"], initial, strict=True)
        ),
    }
