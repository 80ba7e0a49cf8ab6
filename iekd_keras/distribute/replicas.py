"""Cross-replica reductions for loss terms, so that every term equals its global-batch value.

Under a `tf.distribute` strategy each replica sees a shard of the global batch and the optimizer
SUMS the replicas' gradients. A loss term is therefore written as this replica's *share*: the shares
of all replicas sum to the term computed on the whole global batch, and so do their gradients.
On one device (and on JAX, whose data parallelism works on global arrays) a share is the
term itself.

Example:
    >>> share = mean_share(ops.sum(per_sample_loss), ops.shape(per_sample_loss)[0])
    >>> reported = share * replica_count()  # the global-batch value, for a Mean metric
"""

import keras
from keras import ops


def _tf_replica_context():
    """The TensorFlow replica context of a strategy with several replicas, else None."""
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync <= 1:
        return None
    return context


def replica_count():
    """Number of replicas that each compute a share of the global batch (1 outside a strategy)."""
    if keras.backend.backend() != "tensorflow":
        return 1
    import tensorflow as tf

    return tf.distribute.get_strategy().num_replicas_in_sync


def sum_over_replicas(value):
    """Sum of `value` over all replicas, without gradient (identity on one replica)."""
    value = ops.stop_gradient(value)
    context = _tf_replica_context()
    if context is None:
        return value
    return context.all_reduce("sum", value)


def mean_share(local_sum, local_count):
    """This replica's share of a mean over the global batch: local_sum / global count.

    Exact even when the last batch splits unevenly across replicas.
    """
    local_count = ops.cast(local_count, "float32")
    return ops.cast(local_sum, "float32") / ops.maximum(sum_over_replicas(local_count), 1.0)


def power_mean_root_share(local_sum, local_count, p):
    """This replica's share of D = (S / N) ** (1 / p), where S and N are global sums.

    The forward value of each share is D / replicas; its gradient is dD/dS times the gradient of
    this replica's `local_sum`, so the replicas' gradients sum to the gradient of D. On one device
    the value is D itself. The gradient stays finite when S is 0.
    """
    local_sum = ops.cast(local_sum, "float32")
    global_sum = sum_over_replicas(local_sum)
    global_count = ops.maximum(sum_over_replicas(ops.cast(local_count, "float32")), 1.0)
    distance = ops.power(ops.maximum(global_sum / global_count, 0.0), 1.0 / p)
    slope = distance / (p * ops.maximum(global_sum, 1e-30))
    return distance / replica_count() + slope * (local_sum - ops.stop_gradient(local_sum))


def all_gather(value):
    """`value` of every replica, concatenated along axis 0 in replica order (no gradient).

    Local batches may differ in size; the identity on one replica (and on JAX, whose data
    parallelism works on global arrays).
    """
    value = ops.stop_gradient(value)
    context = _tf_replica_context()
    if context is None:
        return value
    return context.all_gather(value, axis=0)


def replica_id():
    """This replica's index in its sync group (0 outside a multi-replica strategy)."""
    context = _tf_replica_context()
    return 0 if context is None else context.replica_id_in_sync_group
