"""The exploration loss: pushes the student's exploration factor away from the teacher factor."""

import keras
from keras import ops

from iekd_keras.layers.factor_distance import FactorDistance


@keras.saving.register_keras_serializable(package="iekd_keras")
class ExplorationLoss(FactorDistance):
    """L_exp = -D_p(F_exp, F_T): minimising it maximises the distance.

    The term and its sign: docs/method.md#the-objective.

    With the L_p metric the value is bounded: |L_exp| <= 2 / sqrt(C*H*W) for p = 1, because both
    factors are unit-norm per sample. With `metric="cosine"` it returns mean(|cos(F_exp, F_T)|),
    as the released `CosLoss(negative=True)`: minimising it pushes the factors towards
    orthogonality, not anti-alignment.

    Args:
        p: order of the distance (default 1).
        metric: "lp" (default) or "cosine".

    Example:
        >>> loss = ExplorationLoss()(exploration_factor, ops.stop_gradient(teacher_factor))
    """

    def call(self, student_factor, teacher_factor):
        if self.metric == "cosine":
            return self.distance(student_factor, teacher_factor)
        return -self.distance(student_factor, teacher_factor)

    def _cosine_cost(self, cosine):
        return ops.abs(cosine)
