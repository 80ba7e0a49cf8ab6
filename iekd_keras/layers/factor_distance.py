"""The distance between per-sample L2-normalised factors that both IE losses are built on."""

import keras
from keras import ops

from iekd_keras.distribute import replicas

METRICS = ("lp", "cosine")


def normalize_per_sample(x):
    """Flattens each sample and scales it to unit L2 norm: x / max(||x||, 1e-12).

    Written as x * rsqrt(max(sum(x^2), 1e-24)) so that an all-zero sample has a finite
    gradient on every backend (the plain division gives NaN or huge values).

    Example:
        >>> normalize_per_sample(ops.ones((2, 4, 4, 8)))  # shape (2, 128), each row of norm 1
    """
    x = ops.cast(x, "float32")
    x = ops.reshape(x, (ops.shape(x)[0], -1))
    squared_norm = ops.sum(ops.square(x), axis=1, keepdims=True)
    return x * ops.rsqrt(ops.maximum(squared_norm, 1e-24))


class FactorDistance(keras.layers.Layer):
    """Distance between a student factor and a teacher factor (docs/method.md#factor-distances).

    Each sample of both factors is flattened and L2-normalised, then with d = F_s - F_t:
    - `metric="lp"`: D_p = (sum |d|^p / N) ** (1 / p) over the WHOLE batch tensor (N = B*C*H*W);
      p = 1 is the mean absolute difference, the released code's default (`NormLoss(p=1)`).
    - `metric="cosine"`: the mean over samples of `1 - cos(F_s, F_t)`.

    Computed in float32 whatever the global dtype policy. Under a `tf.distribute` strategy the
    value is this replica's share (see `iekd_keras.distribute.replicas`): the shares and their
    gradients sum over replicas to the global-batch value. `p` is ignored by the cosine metric.

    Args:
        p: order of the L_p distance, > 0. Default 1.
        metric: "lp" or "cosine".
    """

    def __init__(self, p=1.0, metric="lp", **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if metric not in METRICS:
            raise ValueError(f"metric={metric!r} is not supported; expected one of {METRICS}.")
        if not p > 0:
            raise ValueError(f"p={p!r} must be a positive number (1 for L1, 2 for L2).")
        self.p = float(p)
        self.metric = metric

    def _check_shapes(self, student_factor, teacher_factor):
        student_shape = tuple(student_factor.shape[1:])
        teacher_shape = tuple(teacher_factor.shape[1:])
        if None in student_shape or None in teacher_shape:
            return
        if student_shape != teacher_shape:
            raise ValueError(
                f"{self.name}: the student factor has shape {student_shape} per sample but the "
                f"teacher factor has {teacher_shape}; they must match (the factor encoders set "
                "the channels, the backbones the spatial size)."
            )

    def distance(self, student_factor, teacher_factor):
        """This replica's share of the (non-negative) distance."""
        self._check_shapes(student_factor, teacher_factor)
        student = normalize_per_sample(student_factor)
        teacher = normalize_per_sample(teacher_factor)
        if self.metric == "cosine":
            cosine = ops.sum(student * teacher, axis=1)
            return replicas.mean_share(ops.sum(self._cosine_cost(cosine)), ops.shape(cosine)[0])
        difference = ops.abs(student - teacher)
        count = ops.shape(difference)[0] * ops.shape(difference)[1]
        if self.p == 1.0:
            return replicas.mean_share(ops.sum(difference), count)
        total = ops.sum(ops.power(difference, self.p))
        return replicas.power_mean_root_share(total, count, self.p)

    def _cosine_cost(self, cosine):
        return 1.0 - cosine

    def get_config(self):
        config = super().get_config()
        config.update({"p": self.p, "metric": self.metric})
        return config
