"""Hinton et al.'s knowledge distillation term on temperature-softened logits."""

import keras

from iekd_keras.losses import _terms
from iekd_keras.losses import weights as loss_weights
from iekd_keras.losses.divergences import kl_divergence_share


@keras.saving.register_keras_serializable(package="iekd_keras")
class HintonKD:
    """The soft-target term of KD (Hinton et al., 2015), docs/method.md#kd.

    With z_s, z_t the student's and teacher's logits, T the temperature and B the GLOBAL batch:

        L_KD = alpha * T^2 * (1/B) * sum_b KL(softmax(z_t,b / T) || softmax(z_s,b / T))
        KL(p || q) = sum_c p_c * (log p_c - log q_c)

    computed from log-softmax in float32. The T^2 factor keeps the gradient scale independent of
    T. The full KD objective is (1 - alpha) * CE + L_KD: the (1 - alpha) cross-entropy weight
    is the Distiller's `student_loss_weight`, NOT part of this term, so IE-KD configs must set
    `student_loss_weight = 1 - alpha` (e.g. 0.1 for the standard alpha = 0.9).
    Returns this replica's share: under a `tf.distribute` strategy the shares sum to the
    global-batch value (`replicas.mean_share`).

    Standard settings: T = 4, alpha = 0.9 (RepDistiller CIFAR scripts); the IE-KD repository
    uses T = 20, alpha = 0.95 on CIFAR-10 (docs/method.md#kd).

    Args:
        temperature: softening temperature T > 0. Default 4.
        alpha: weight of the term, a number >= 0 or a
            `keras.optimizers.schedules.LearningRateSchedule` of the optimizer step. Default 0.9.
        name: name of the term, as reported by `fit`. Default "kd_loss".

    Example:
        >>> distiller = Distiller(
        ...     teacher, student, lambda_inh=0.0, lambda_exp=0.0, student_loss_weight=0.1,
        ...     distillation_losses=[HintonKD(temperature=4.0, alpha=0.9)],
        ... )
    """

    def __init__(self, temperature=4.0, alpha=0.9, name="kd_loss"):
        self.temperature = _terms.check_positive("HintonKD", "temperature", temperature)
        self.alpha = loss_weights.check_loss_weight("alpha", alpha)
        self.name = name
        self.built = False

    def build(self, teacher_shapes, student_shapes):
        """Checks that both models have logits over the same classes."""
        teacher = tuple(_terms.lookup(teacher_shapes, "logits", "teacher", self.name))
        student = tuple(_terms.lookup(student_shapes, "logits", "student", self.name))
        if teacher[-1] != student[-1]:
            raise ValueError(
                f"{self.name}: teacher logits {teacher} and student logits {student} have "
                "different numbers of classes."
            )
        self.built = True

    def __call__(self, teacher_outputs, student_outputs, batch):
        kl = kl_divergence_share(
            teacher_outputs["logits"], student_outputs["logits"], self.temperature
        )
        return _terms.weight_now(self.alpha, batch) * (self.temperature**2) * kl

    def get_config(self):
        return {
            "temperature": self.temperature,
            "alpha": loss_weights.serialize_loss_weight(self.alpha),
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        return loss_weights.from_config_with_weights(cls, config, ("alpha",))
