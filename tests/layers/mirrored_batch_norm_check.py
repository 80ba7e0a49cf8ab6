"""The library's BatchNormalization against Keras's under MirroredStrategy over two logical CPUs.

Run by `test_batch_normalization_mirrored.py` (`python -m tests.layers.mirrored_batch_norm_check
[--out FILE]`, see `tests/subprocess_checks.py`): TensorFlow's logical devices must be
configured before it initialises them. A global batch of 6 splits 3 + 3 over the replicas; one
training step of a Conv2D-BatchNormalization model built twice, once with each class and the same
weights, per dtype policy, with `synchronized` off (the fused kernel) and on (Keras's code).
Writes a JSON summary: for each case, the largest absolute difference (as float32, relative to
the largest magnitude when above 1) between the two classes of the replicas' outputs and input
gradients, the gradients summed over replicas (kernel, gamma, beta) and every replica's copy of
the moving statistics; which kernels each class's step ran; whether the replicas' copies of the
moving statistics are equal.
"""

from tests.deterministic_cpus import deterministic_logical_cpus

DEVICES = deterministic_logical_cpus(2)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from iekd_keras.layers import BatchNormalization  # noqa: E402
from tests.subprocess_checks import check_main  # noqa: E402

SHAPE = (6, 5, 5, 3)
CASES = [
    f"{policy}:{sync}"
    for policy in ("float32", "mixed_float16", "mixed_bfloat16")
    for sync in ("local", "synchronized")
]


def build(strategy, cls, synchronized):
    with strategy.scope():
        keras.utils.set_random_seed(0)
        inputs = keras.Input(SHAPE[1:])
        x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
        x = cls(momentum=0.9, epsilon=1e-5, synchronized=synchronized, name="bn")(x)
        return keras.Model(inputs, x)


def step_results(strategy, model, images, upstream):
    dataset = tf.data.Dataset.from_tensor_slices((images, upstream)).batch(SHAPE[0])
    batch = next(iter(strategy.experimental_distribute_dataset(dataset)))
    variables = [model.get_layer("conv").kernel, model.get_layer("bn").gamma]
    variables.append(model.get_layer("bn").beta)

    def replica_step(x, g):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = model(x, training=True)
            loss = tf.reduce_sum(tf.cast(y, "float32") * g)
        gradients = tape.gradient(loss, [x, *variables])
        return y, gradients

    @tf.function
    def run(batch):
        outputs, gradients = strategy.run(replica_step, args=batch)
        summed = [strategy.reduce("SUM", g, axis=None) for g in gradients[1:]]
        return (
            strategy.experimental_local_results(outputs),
            strategy.experimental_local_results(gradients[0]),
            summed,
        )

    kernels = {
        op.type
        for op in run.get_concrete_function(batch).graph.get_operations()
        if "BatchNorm" in op.type
    }
    outputs, input_gradients, summed = run(batch)
    bn = model.get_layer("bn")
    statistics = {
        name: [np.asarray(copy) for copy in getattr(bn, name).value.values]
        for name in ("moving_mean", "moving_variance")
    }
    return {
        "outputs": [np.asarray(tf.cast(o, "float32")) for o in outputs],
        "input_gradients": [np.asarray(tf.cast(g, "float32")) for g in input_gradients],
        "summed_gradients": [np.asarray(g) for g in summed],
        **statistics,
    }, sorted(kernels)


def largest(a, b):
    """The largest absolute difference, relative to the largest magnitude in `b` when above 1."""
    scale = max(1.0, max(float(np.max(np.abs(y))) for y in b))
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b, strict=True)) / scale


def copies_equal(results):
    return all(
        np.array_equal(results[name][0], results[name][1])
        for name in ("moving_mean", "moving_variance")
    )


def summarise(cases):
    strategy = tf.distribute.MirroredStrategy(DEVICES)
    rng = np.random.default_rng(0)
    images = rng.normal(1.0, 2.0, SHAPE).astype("float32")
    upstream = rng.normal(size=(*SHAPE[:3], 4)).astype("float32")
    summary = {"replicas": strategy.num_replicas_in_sync}
    for case in cases:
        policy, sync = case.split(":")
        keras.config.set_dtype_policy(policy)
        synchronized = sync == "synchronized"
        fused = build(strategy, BatchNormalization, synchronized)
        reference = build(strategy, keras.layers.BatchNormalization, synchronized)
        reference.set_weights(fused.get_weights())
        ours, our_kernels = step_results(strategy, fused, images, upstream)
        theirs, their_kernels = step_results(strategy, reference, images, upstream)
        summary[case] = {
            "kernels": our_kernels,
            "reference_kernels": their_kernels,
            "differences": {name: largest(ours[name], theirs[name]) for name in ours},
            "moving_variance_moved": float(np.max(np.abs(ours["moving_variance"][0] - 1.0))),
            "copies_equal": copies_equal(ours),
            "reference_copies_equal": copies_equal(theirs),
        }
        keras.config.set_dtype_policy("float32")
    return summary


if __name__ == "__main__":
    check_main(__doc__, summarise, cases=CASES)
