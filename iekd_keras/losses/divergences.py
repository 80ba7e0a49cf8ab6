"""Divergences between predicted distributions, reduced over the global batch."""

from keras import ops

from iekd_keras.distribute import replicas


def kl_divergence_share(target_logits, logits, temperature=1.0):
    """This replica's share of the batch-mean KL(softmax(target / T) || softmax(logits / T)).

    The KL is summed over classes and averaged over the global batch (PyTorch's "batchmean",
    the released DML code's `loss/mutual.py`); the target carries no gradient. Computed in
    float32 from log-softmaxes, so a vanishing target probability contributes exactly 0.
    """
    target = ops.stop_gradient(ops.cast(target_logits, "float32"))
    target_log_probs = ops.log_softmax(target / temperature, axis=-1)
    log_probs = ops.log_softmax(ops.cast(logits, "float32") / temperature, axis=-1)
    per_sample = ops.sum(ops.exp(target_log_probs) * (target_log_probs - log_probs), axis=-1)
    return replicas.mean_share(ops.sum(per_sample), ops.shape(per_sample)[0])
