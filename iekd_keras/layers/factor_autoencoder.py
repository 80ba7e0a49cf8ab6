"""The teacher's factor auto-encoder ("paraphraser"), pre-trained by reconstruction."""

import keras

from iekd_keras.layers.factor_encoder import FactorEncoder


@keras.saving.register_keras_serializable(package="iekd_keras")
class FactorAutoencoder(keras.layers.Layer):
    """Encoder `FactorEncoder(factor_channels)` and mirrored decoder `FactorEncoder(C_in)`.

    Returns `(factor, reconstruction)` as the released `auto_encoder.forward` does. Only the
    encoder is used during distillation (`autoencoder.encoder`); the decoder exists for the
    reconstruction pre-training (docs/method.md#stage-1-teacher-auto-encoder). The decoder's
    last op is a LeakyReLU.

    Args:
        factor_channels: channels of the factor (32 on CIFAR; FT's rate k = 0.5 gives C_in / 2).
        synchronized: synchronise BatchNorm statistics across replicas (TensorFlow only).

    Example:
        >>> factor, reconstruction = FactorAutoencoder(32)(keras.ops.ones((2, 8, 8, 64)))
        >>> factor.shape, reconstruction.shape
        ((2, 8, 8, 32), (2, 8, 8, 64))
    """

    def __init__(self, factor_channels, synchronized=False, **kwargs):
        super().__init__(**kwargs)
        self.factor_channels = factor_channels
        self.synchronized = synchronized
        self.encoder = FactorEncoder(factor_channels, synchronized=synchronized, name="encoder")
        self.decoder = None

    def build(self, input_shape):
        if input_shape[-1] is None:
            raise ValueError(f"{self.name}: the input's channel dimension must be known.")
        self.encoder.build(input_shape)
        self.decoder = FactorEncoder(
            input_shape[-1], synchronized=self.synchronized, name="decoder"
        )
        self.decoder.trainable = self.trainable
        self.decoder.build(self.encoder.compute_output_shape(input_shape))
        self.built = True

    def call(self, inputs, training=None):
        factor = self.encoder(inputs, training=training)
        return factor, self.decoder(factor, training=training)

    def compute_output_shape(self, input_shape):
        return self.encoder.compute_output_shape(input_shape), tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"factor_channels": self.factor_channels, "synchronized": self.synchronized})
        return config
