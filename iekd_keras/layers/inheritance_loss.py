"""The inheritance loss: pulls the student's inheritance factor towards the teacher factor."""

import keras

from iekd_keras.layers.factor_distance import FactorDistance


@keras.saving.register_keras_serializable(package="iekd_keras")
class InheritanceLoss(FactorDistance):
    """L_inh = D_p(F_inh, F_T), the distance of docs/method.md#factor-distances (to be minimised).

    Args:
        p: order of the distance (default 1, the paper's best, Table 6a).
        metric: "lp" (default) or "cosine" (mean of 1 - cos).

    Example:
        >>> loss = InheritanceLoss()(student_factor, ops.stop_gradient(teacher_factor))
    """

    def call(self, student_factor, teacher_factor):
        return self.distance(student_factor, teacher_factor)
