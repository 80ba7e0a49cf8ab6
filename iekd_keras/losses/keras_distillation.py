"""An adapter that runs Keras's own `keras.distillation` losses as Distiller terms."""

import keras
from keras import ops

from iekd_keras.distribute import replicas
from iekd_keras.losses import _terms
from iekd_keras.losses import weights as loss_weights


def _distillation_module():
    module = getattr(keras, "distillation", None)
    if module is None:  # pragma: no cover - keras < 3.12
        raise ImportError(
            f"KerasDistillationLoss needs keras.distillation (Keras >= 3.12); this is Keras "
            f"{keras.__version__}."
        )
    return module


def _default_outputs(loss):
    """(teacher_output, student_output) a Keras distillation loss reads by default."""
    distillation = _distillation_module()
    if isinstance(loss, distillation.FeatureDistillation):
        return loss.teacher_layer_name or "features", loss.student_layer_name or "features"
    return "logits", "logits"


@keras.saving.register_keras_serializable(package="iekd_keras")
class KerasDistillationLoss:
    """Wraps a `keras.distillation.DistillationLoss` (Keras 3.15) as an extra Distiller term.

        L = weight * loss.compute_loss(teacher_outputs[teacher_output],
                                       student_outputs[student_output]) / replicas

    Keras's losses return a mean over the batch they are given, i.e. the replica's LOCAL
    batch under a `tf.distribute` strategy; dividing by `replicas.replica_count()` turns it
    into this replica's share, exact when the replicas hold equal numbers of samples (an
    uneven last batch weights the replicas equally rather than by their samples). Use the
    native terms (`HintonKD`, ...) where that matters.

    Which outputs are compared (override with `teacher_output` / `student_output`):
    - `keras.distillation.LogitsDistillation`: "logits". Keras 3.15 applies its T^2-scaled
      KL only when `loss` is a `keras.losses.KLDivergence` INSTANCE; its default
      `loss="kl_divergence"` resolves to the plain function, which Keras then applies to the
      temperature-scaled LOGITS (no softmax, no T^2) as if they were probabilities. That form
      is refused here: pass `loss=keras.losses.KLDivergence()`, which gives
      T^2 * mean_b KL(softmax(z_t/T) || softmax(z_s/T)), `HintonKD` without alpha (up to
      Keras's clipping of probabilities at 1e-7).
    - `keras.distillation.FeatureDistillation`: the output named by its
      `teacher_layer_name` / `student_layer_name` (tap it with `with_taps`), else
      "features"; the two maps must have the same per-sample shape.
    - any other `DistillationLoss`: "logits".

    Args:
        loss: a `keras.distillation.DistillationLoss` instance.
        weight: a number >= 0 or a `LearningRateSchedule` of the step. Default 1.
        teacher_output: name of the teacher output to pass; None for the default above.
        student_output: name of the student output to pass; None for the default above.
        name: name of the term. Default "keras_distillation_loss".

    Example:
        >>> kd = KerasDistillationLoss(
        ...     keras.distillation.LogitsDistillation(4.0, loss=keras.losses.KLDivergence()),
        ...     weight=0.9, name="keras_kd_loss",
        ... )
        >>> Distiller(teacher, student, encoder, distillation_losses=[kd])
    """

    def __init__(
        self,
        loss,
        weight=1.0,
        teacher_output=None,
        student_output=None,
        name="keras_distillation_loss",
    ):
        distillation = _distillation_module()
        if not isinstance(loss, distillation.DistillationLoss):
            raise TypeError(
                "KerasDistillationLoss wraps a keras.distillation.DistillationLoss (e.g. "
                f"LogitsDistillation, FeatureDistillation); got {type(loss).__name__}."
            )
        if isinstance(loss, distillation.LogitsDistillation) and any(
            fn is keras.losses.kl_divergence for fn in keras.tree.flatten(loss.loss)
        ):
            raise ValueError(
                "KerasDistillationLoss: this LogitsDistillation uses the kl_divergence "
                "FUNCTION (its default loss='kl_divergence'), which Keras applies to "
                "temperature-scaled logits as if they were probabilities, without T^2. Pass "
                "loss=keras.losses.KLDivergence() (an instance) for the KD term."
            )
        default_teacher, default_student = _default_outputs(loss)
        self.loss = loss
        self.weight = loss_weights.check_loss_weight("weight", weight)
        self.teacher_output = teacher_output or default_teacher
        self.student_output = student_output or default_student
        self.name = name
        self.built = False

    def build(self, teacher_shapes, student_shapes):
        """Checks the outputs exist (and, for feature losses, have the same shape)."""
        teacher = tuple(_terms.lookup(teacher_shapes, self.teacher_output, "teacher", self.name))
        student = tuple(_terms.lookup(student_shapes, self.student_output, "student", self.name))
        if isinstance(self.loss, _distillation_module().FeatureDistillation):
            if teacher[1:] != student[1:]:
                raise ValueError(
                    f"{self.name}: FeatureDistillation compares the teacher output "
                    f"{self.teacher_output!r} of shape {teacher} with the student output "
                    f"{self.student_output!r} of shape {student}; their per-sample shapes must "
                    "match (use FitNetHint for a learned connector)."
                )
        self.built = True

    def __call__(self, teacher_outputs, student_outputs, batch):
        teacher = _terms.lookup(teacher_outputs, self.teacher_output, "teacher", self.name)
        student = _terms.lookup(student_outputs, self.student_output, "student", self.name)
        value = ops.cast(self.loss.compute_loss(teacher, student), "float32")
        return _terms.weight_now(self.weight, batch) * value / replicas.replica_count()

    def get_config(self):
        return {
            "loss": keras.saving.serialize_keras_object(self.loss),
            "weight": loss_weights.serialize_loss_weight(self.weight),
            "teacher_output": self.teacher_output,
            "student_output": self.student_output,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["loss"] = keras.saving.deserialize_keras_object(config["loss"])
        config["weight"] = loss_weights.deserialize_loss_weight(config["weight"])
        return cls(**config)
