"""Logical CPUs whose TensorFlow kernels give the same bits in every process, however loaded.

The scripts that compare a fit under `MirroredStrategy` with a one-device fit run in their own
process and call `deterministic_logical_cpus()` before TensorFlow initialises its devices.

Why: by default one process can compute two different answers from the same inputs. TensorFlow's
oneDNN kernels (convolutions, matmuls and their gradients) split their work over the intra-op
thread pool, except when the calling thread is itself one of that pool's workers: then they run
on one thread. Which thread runs a kernel depends on scheduling, hence on machine load, and a
different split sums in a different order. On a loaded machine two processes fitting the same
mutual model on one device were measured to differ by 1e-6 (relative, weights), and the L1
terms of the IE losses, whose gradient is a sign, can amplify such a difference a thousandfold
within a few steps. One thread per pool makes every split the same; op determinism refuses the
few kernels that have no deterministic CPU implementation.

Example:
    >>> from tests.deterministic_cpus import deterministic_logical_cpus
    >>> strategy = tf.distribute.MirroredStrategy(deterministic_logical_cpus(2))
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import tensorflow as tf  # noqa: E402


def deterministic_logical_cpus(count=2):
    """Splits the CPU into `count` logical devices that compute deterministically; their names.

    Sets one intra-op and one inter-op thread and TensorFlow's op determinism (all process-wide)
    and must run before TensorFlow initialises its devices.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count={count!r} must be a positive number of logical CPUs.")
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.experimental.enable_op_determinism()
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
    )
    return [f"/cpu:{index}" for index in range(count)]
