"""Factor transfer (Kim et al., 2018) with the IE-KD repository's translator design."""

import keras

from iekd_keras.layers import FactorEncoder, InheritanceLoss
from iekd_keras.losses import _terms
from iekd_keras.losses import weights as loss_weights


@keras.saving.register_keras_serializable(package="iekd_keras")
class FactorTransfer(_terms.TermLayer):
    """The FT term (docs/method.md#ft): a full-width student translator matched to F_T.

        L_FT = beta * D_p(translator(f_s), F_T),
        D_p(S, T) = ( sum |S_hat - T_hat|^p / N )^(1/p),   N = B * C * H * W,

    where f_s is the student's full `student_output` map, F_T the frozen teacher factor
    (`teacher_outputs["factor"]`, the Distiller's teacher encoder applied to the teacher's
    features) and X_hat the per-sample flattened, L2-normalised factor
    (docs/method.md#factor-distances). For p = 1, D_1 is the mean absolute difference of the
    normalised factors, the scale of official FT's `L1Loss` on `F.normalize`. The distance is
    `iekd_keras.layers.InheritanceLoss`, so
    this is the inheritance loss applied to the whole feature: the IE-KD repository's
    `FactorTransfer` processor (FT.py L148-185) with one full-width translator `embedS` and
    `loss_weight: 500`. The translator is a `FactorEncoder` (the IE-KD repository's BN coder,
    not official FT's bias-only one), trained with the student; its BatchNorm uses batch
    statistics when `training` (from the argument, else `batch["training"]`, else True).
    Computed in float32; returns this replica's share.

    IE-FT (docs/method.md#ie-x) = FT's full objective plus the two IE terms: give the Distiller the
    pre-trained teacher encoder, `distillation_losses=[FactorTransfer()]`, and keep
    `lambda_inh`, `lambda_exp` > 0; plain FT sets both lambdas to 0.

    Args:
        beta: weight, a number >= 0 or a `LearningRateSchedule` of the step. Default 500.
        factor_channels: channels of the translator's factor; None (default) takes the teacher
            factor's, and any other value must equal them.
        p: order of the distance (default 1, the released code's).
        student_output: name of the student map to translate. Default "features".
        synchronized: synchronise the translator's BatchNorm across replicas (TensorFlow only).
        name: name of the term. Default "ft_loss".

    Example:
        >>> distiller = Distiller(
        ...     teacher, student, autoencoder.encoder, lambda_inh=0.0, lambda_exp=0.0,
        ...     distillation_losses=[FactorTransfer(beta=500.0)],
        ... )
    """

    def __init__(
        self,
        beta=500.0,
        factor_channels=None,
        p=1,
        student_output="features",
        synchronized=False,
        name="ft_loss",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.beta = loss_weights.check_loss_weight("beta", beta)
        if factor_channels is not None:
            factor_channels = _terms.check_count(
                "FactorTransfer", "factor_channels", factor_channels
            )
        self.factor_channels = factor_channels
        self.p = _terms.check_positive("FactorTransfer", "p", p)
        self.student_output = student_output
        self.synchronized = bool(synchronized)
        self.distance = InheritanceLoss(p=self.p, name="distance")
        self.translator = None

    def build(self, teacher_shapes, student_shapes):
        if "factor" not in teacher_shapes:
            raise ValueError(
                f"{self.name}: FactorTransfer matches the teacher factor F_T, but the teacher "
                f"outputs are {sorted(teacher_shapes)} with no 'factor': give the Distiller the "
                "pre-trained teacher_encoder (e.g. FactorAutoencoder(...).encoder), with "
                "lambda_inh = lambda_exp = 0 for plain FT."
            )
        factor = tuple(teacher_shapes["factor"])
        student = _terms.feature_map_shape(
            student_shapes, self.student_output, "student", self.name
        )
        if self.factor_channels is not None and self.factor_channels != factor[-1]:
            raise ValueError(
                f"{self.name}: factor_channels={self.factor_channels} but the teacher factor "
                f"has {factor[-1]} channels (shape {factor}); they must be equal."
            )
        if tuple(factor[1:3]) != tuple(student[1:3]):
            raise ValueError(
                f"{self.name}: the teacher factor is {factor[1]}x{factor[2]} (shape {factor}) but "
                f"the student map {self.student_output!r} is {student[1]}x{student[2]} (shape "
                f"{student}); the translator keeps the spatial size, so they must match."
            )
        self.translator = FactorEncoder(
            factor[-1], synchronized=self.synchronized, name="translator"
        )
        self.translator.build(student)

    def call(self, teacher_outputs, student_outputs, batch, training=None):
        training = self.resolve_training(batch, training)
        student_map = _terms.lookup(student_outputs, self.student_output, "student", self.name)
        teacher_factor = _terms.lookup(teacher_outputs, "factor", "teacher", self.name)
        student_factor = self.translator(student_map, training=training)
        return _terms.weight_now(self.beta, batch) * self.distance(student_factor, teacher_factor)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "beta": loss_weights.serialize_loss_weight(self.beta),
                "factor_channels": self.factor_channels,
                "p": self.p,
                "student_output": self.student_output,
                "synchronized": self.synchronized,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        return loss_weights.from_config_with_weights(cls, config, ("beta",))
