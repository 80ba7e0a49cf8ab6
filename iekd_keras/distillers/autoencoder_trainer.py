"""Stage 1 of IE-KD: pre-train the teacher's factor auto-encoder by reconstruction."""

import keras
from keras import ops

from iekd_keras.distillers.model_checks import two_output_shapes
from iekd_keras.distillers.term_model import TermModel, deserialized, serialize
from iekd_keras.layers import FactorAutoencoder
from iekd_keras.losses.reconstruction import check_reconstruction, reconstruction_share


@keras.saving.register_keras_serializable(package="iekd_keras")
class FactorAutoencoderTrainer(TermModel):
    """Fits a `FactorAutoencoder` to reconstruct the frozen teacher's last feature map.

    The teacher always runs in inference mode (BatchNorm moving statistics, no gradient); the
    auto-encoder trains. The loss is the error between f_T and its reconstruction: the mean
    absolute error (`reconstruction="l1"`, default, as the released code trains it), the mean
    squared error (`"mse"`, the paper's form) or the root mean square (`"rms"`, the released
    RecLoss(p=2)); see `iekd_keras.losses.reconstruction`. `fit` reports `loss` and
    `reconstruction_loss`. Recipe (docs/method.md#stage-1-teacher-auto-encoder): 30 epochs,
    SGD with a constant LR 0.1, Nesterov momentum 0.9, coupled weight decay 5e-4.

    Args:
        teacher: frozen functional model returning `[logits, features]` (set untrainable).
        autoencoder: a `FactorAutoencoder`, or None for `FactorAutoencoder(factor_channels)`.
        factor_channels: channels of the factor when `autoencoder` is None (default 32).
        reconstruction: "l1" (default), "mse" or "rms".

    Example:
        >>> trainer = FactorAutoencoderTrainer(teacher)
        >>> trainer.compile(optimizer=CoupledWeightDecaySGD(0.1)).fit(train_dataset, epochs=30)
        >>> teacher_encoder = trainer.autoencoder.encoder
    """

    def __init__(
        self, teacher, autoencoder=None, factor_channels=32, reconstruction="l1", **kwargs
    ):
        check_reconstruction(reconstruction)
        super().__init__(term_names=["loss", "reconstruction_loss"], **kwargs)
        _, features_shape = two_output_shapes(teacher, "teacher")
        teacher.trainable = False
        self.teacher = teacher
        self.autoencoder = autoencoder or FactorAutoencoder(factor_channels, name="autoencoder")
        if not self.autoencoder.built:
            self.autoencoder.build(features_shape)
        self.reconstruction = reconstruction
        self.built = True

    @property
    def checkpoint_model(self):
        """What a checkpoint of this stage holds: the auto-encoder alone, as a Keras model."""
        features = keras.Input(self.teacher.outputs[1].shape[1:], name="teacher_features")
        return keras.Model(features, self.autoencoder(features), name="teacher_autoencoder")

    def call(self, inputs, training=False):
        """The teacher's factor F_T for `inputs`."""
        features = self.teacher(inputs, training=False)[1]
        return self.autoencoder(features, training=training)[0]

    def compute_terms(self, x, y, training):
        features = ops.stop_gradient(self.teacher(x, training=False)[1])
        _, reconstruction = self.autoencoder(features, training=training)
        share = reconstruction_share(reconstruction, features, self.reconstruction)
        return {"loss": share, "reconstruction_loss": share}, None

    def get_config(self):
        return {
            "name": self.name,
            "teacher": serialize(self.teacher),
            "autoencoder": serialize(self.autoencoder),
            "reconstruction": self.reconstruction,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**deserialized(config, ("teacher", "autoencoder")))
