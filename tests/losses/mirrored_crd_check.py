"""CRD under MirroredStrategy over two logical CPUs against one device, on the same batch.

Run by `test_crd_mirrored.py` (`python -m tests.losses.mirrored_crd_check [--out FILE]`, see
`tests/subprocess_checks.py`): TensorFlow's logical devices must be configured before it
initialises them; `deterministic_logical_cpus` gives them one thread each and op determinism,
so that machine load cannot change the numbers. One global batch of 5 examples
splits 3 + 2 over the replicas. The negatives are a fixed function of each example's index, so
both runs contrast the same rows.
Writes a JSON summary: the replica count, the loss of each run, the largest difference between
every replica's copy of each state variable and the one-device value, and between the copies.
"""

from tests.deterministic_cpus import deterministic_logical_cpus

DEVICES = deterministic_logical_cpus(2)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import ops  # noqa: E402

from iekd_keras.losses import ContrastiveRepresentationDistillation  # noqa: E402
from tests.subprocess_checks import check_main  # noqa: E402

N, K, D, GLOBAL_BATCH = 32, 8, 16, 5
SHAPES = ({"features": (None, 4, 4, 8)}, {"features": (None, 4, 4, 6)})
STATE = ("student_memory", "teacher_memory", "student_normalizer", "teacher_normalizer")


def build():
    keras.utils.set_random_seed(0)
    term = ContrastiveRepresentationDistillation(N, embedding_dim=D, num_negatives=K, seed=1)
    term.build(*SHAPES)
    return term


def fixed_negatives(term):
    """Negatives as a function of the positives' indices: the same rows in both runs."""

    def negatives_of(indices):
        offsets = ops.arange(1, K + 1, dtype="int32")
        return (ops.expand_dims(indices, 1) * 7 + offsets) % N

    original_call = term.call

    def call(teacher_outputs, student_outputs, batch, training=None):
        indices = ops.cast(batch["indices"], "int32")
        term._negatives = lambda batch_size: negatives_of(indices)
        return original_call(teacher_outputs, student_outputs, batch, training=training)

    term.call = call


def data():
    rng = np.random.default_rng(0)
    teacher = np.abs(rng.normal(size=(GLOBAL_BATCH, 4, 4, 8))).astype("float32")
    student = np.abs(rng.normal(size=(GLOBAL_BATCH, 4, 4, 6))).astype("float32")
    indices = np.array([4, 9, 30, 2, 17], "int32")
    return teacher, student, indices


def step(term, teacher, student, indices):
    return term({"features": teacher}, {"features": student}, {"indices": indices}, training=True)


def summarise():
    teacher, student, indices = data()
    single = build()
    fixed_negatives(single)
    weights = single.get_weights()
    single_loss = float(tf.function(lambda: step(single, teacher, student, indices))())

    strategy = tf.distribute.MirroredStrategy(DEVICES)
    with strategy.scope():
        mirrored = build()
    mirrored.set_weights(weights)
    fixed_negatives(mirrored)
    dataset = tf.data.Dataset.from_tensor_slices((teacher, student, indices)).batch(GLOBAL_BATCH)
    batch = next(iter(strategy.experimental_distribute_dataset(dataset)))

    @tf.function
    def run(batch):
        shares = strategy.run(lambda t, s, i: step(mirrored, t, s, i), args=batch)
        return strategy.reduce("SUM", shares, axis=None), strategy.experimental_local_results(
            strategy.run(lambda i: tf.shape(i)[0], args=(batch[2],))
        )

    mirrored_loss, sizes = run(batch)
    summary = {
        "replicas": strategy.num_replicas_in_sync,
        "local_batches": [int(s) for s in sizes],
        "single_loss": single_loss,
        "mirrored_loss": float(mirrored_loss),
        "vs_single": {},
        "between_copies": {},
    }
    for name in STATE:
        reference = np.asarray(getattr(single, name), "float64")
        copies = [np.asarray(c, "float64") for c in getattr(mirrored, name).value.values]
        scale = max(float(np.max(np.abs(reference))), 1e-6)
        summary["vs_single"][name] = (
            max(float(np.max(np.abs(c - reference))) for c in copies) / scale
        )
        summary["between_copies"][name] = float(np.max(np.abs(copies[0] - copies[1])))

    # The real sampler: each replica draws its own negatives from the shared seed state, and
    # the state copies stay equal.
    with strategy.scope():
        sampler = build()

    def draw():
        return sampler._negatives(4)

    @tf.function
    def draw_on_replicas():
        return strategy.run(draw)

    draws = strategy.experimental_local_results(draw_on_replicas())
    summary["replica_negatives_differ"] = not np.array_equal(*(np.asarray(d) for d in draws))
    states = [np.asarray(c) for c in sampler.seed_generator.state.value.values]
    summary["sampler_states_equal"] = bool(np.array_equal(*states))
    moved = np.asarray(single.student_memory) - np.asarray(build().student_memory)
    summary["changed_rows"] = sorted(int(r) for r in np.nonzero(np.any(moved != 0, axis=1))[0])
    return summary


if __name__ == "__main__":
    check_main(__doc__, summarise)
