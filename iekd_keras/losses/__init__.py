"""Extra distillation terms for `iekd_keras.Distiller(..., distillation_losses=[...])`.

Each term has a string `name`, is called as `term(teacher_outputs, student_outputs, batch)` and
returns its weighted value as this replica's share (see `iekd_keras.distribute.replicas`); weights
are numbers or `keras.optimizers.schedules.LearningRateSchedule`s of the optimizer step. Terms with
variables are Keras layers built by the Distiller from the models' output shapes. Import this
package before loading a saved Distiller that holds one of these terms (it registers them).

Example:
    >>> from iekd_keras.losses import AttentionTransfer, HintonKD
    >>> Distiller(teacher, student, encoder, student_loss_weight=0.1,
    ...           distillation_losses=[HintonKD(alpha=0.9), AttentionTransfer()])
"""

from iekd_keras.losses.attention_transfer import AttentionTransfer
from iekd_keras.losses.crd import ContrastiveRepresentationDistillation
from iekd_keras.losses.factor_transfer import FactorTransfer
from iekd_keras.losses.fitnet import FitNetHint
from iekd_keras.losses.hinton_kd import HintonKD
from iekd_keras.losses.keras_distillation import KerasDistillationLoss
from iekd_keras.losses.weights import LinearWarmup, step_decay

__all__ = [
    "AttentionTransfer",
    "ContrastiveRepresentationDistillation",
    "FactorTransfer",
    "FitNetHint",
    "HintonKD",
    "KerasDistillationLoss",
    "LinearWarmup",
    "step_decay",
]
