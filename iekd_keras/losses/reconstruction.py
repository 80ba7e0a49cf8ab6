"""The auto-encoders' reconstruction error, with options named for what they compute.

- "l1": mean absolute error over every element of the batch (the released code's `RecLoss()`,
  whose default order is 1, as its auto-encoder trainings use it).
- "mse": mean squared error over every element (the paper's squared-L2 form, as a mean).
- "rms": root mean square, the square root of "mse" taken once over the whole batch (the
  released `RecLoss(2)`: `||x - y||_2 / sqrt(numel)`, not a mean of per-sample roots).

Example:
    >>> reconstruction_share(ops.ones((2, 3)), ops.zeros((2, 3)), "rms")  # 1.0 on one device
"""

from keras import ops

from iekd_keras.distribute import replicas

RECONSTRUCTIONS = ("l1", "mse", "rms")

# Former option names, each with the sentence that says what to choose instead.
RENAMED = {
    "l2": "was renamed: choose 'mse' for the mean squared error (the paper's form) or 'rms' for "
    "the root mean square (the released RecLoss(p=2))."
}


def check_reconstruction(value, name="reconstruction"):
    """Raises ValueError unless `value` is one of RECONSTRUCTIONS; returns it.

    Example:
        >>> check_reconstruction("mse")
        'mse'
    """
    if value in RENAMED:
        raise ValueError(f"{name}={value!r} {RENAMED[value]}")
    if value not in RECONSTRUCTIONS:
        raise ValueError(f"{name}={value!r} is not supported; expected one of {RECONSTRUCTIONS}.")
    return value


def reconstruction_share(reconstructed, target, reconstruction):
    """This replica's share of the reconstruction error over the global batch.

    The shares of all replicas sum to the error of the whole batch, and so do their gradients
    (see `iekd_keras.distribute.replicas`); on one device the share is the error itself.

    Example:
        >>> reconstruction_share(reconstructed, features, "l1")
    """
    check_reconstruction(reconstruction)
    error = ops.cast(reconstructed, "float32") - ops.cast(target, "float32")
    count = ops.size(error)
    if reconstruction == "l1":
        return replicas.mean_share(ops.sum(ops.abs(error)), count)
    squares = ops.sum(ops.square(error))
    if reconstruction == "mse":
        return replicas.mean_share(squares, count)
    return replicas.power_mean_root_share(squares, count, 2)
