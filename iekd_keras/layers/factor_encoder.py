"""The factor coder of the released IE-KD code (`model/auto_encoder.py`, `Coder`)."""

import keras

from iekd_keras.layers.batch_normalization import BatchNormalization

CONV_INITIALIZER_CONFIG = {"scale": 2.0, "mode": "fan_out", "distribution": "untruncated_normal"}


def pytorch_batch_norm(name, synchronized=False):
    """BatchNormalization with PyTorch's defaults (running-average update 0.1, epsilon 1e-5),
    fused on TensorFlow where it can be (`iekd_keras.layers.BatchNormalization`)."""
    return BatchNormalization(momentum=0.9, epsilon=1e-5, synchronized=synchronized, name=name)


@keras.saving.register_keras_serializable(package="iekd_keras")
class FactorEncoder(keras.layers.Layer):
    """Maps a feature map to a compact "factor" of `filters` channels, keeping its spatial size.

    Layer order (docs/method.md#coder-architecture): LeakyReLU(0.1), then three times
    [3x3 conv (stride 1, same padding, no bias), BatchNorm, LeakyReLU(0.1)], with channels
    C_in -> C_in -> filters -> filters. Convolutions use untruncated He-normal fan-out init
    (PyTorch's `normal_(0, sqrt(2 / (k*k*C_out)))`), BatchNorm PyTorch's momentum and epsilon.
    The same layer with `filters = C_in` of the factor is the auto-encoder's decoder.

    Args:
        filters: channels of the factor (32 for every IE-KD model on CIFAR).
        synchronized: synchronise BatchNorm statistics across replicas (TensorFlow only).

    Example:
        >>> encoder = FactorEncoder(32)
        >>> encoder(keras.ops.ones((2, 8, 8, 64))).shape
        (2, 8, 8, 32)
    """

    def __init__(self, filters, synchronized=False, **kwargs):
        super().__init__(**kwargs)
        if int(filters) != filters or filters < 1:
            raise ValueError(f"filters={filters!r} must be a positive integer.")
        self.filters = int(filters)
        self.synchronized = synchronized
        self.input_activation = keras.layers.LeakyReLU(negative_slope=0.1, name="input_activation")
        self.convs = []
        self.norms = []
        self.activations = []

    def build(self, input_shape):
        input_channels = input_shape[-1]
        if input_channels is None:
            raise ValueError(f"{self.name}: the input's channel dimension must be known.")
        shape = tuple(input_shape)
        for index, channels in enumerate((input_channels, self.filters, self.filters)):
            conv = keras.layers.Conv2D(
                channels,
                3,
                padding="same",
                use_bias=False,
                kernel_initializer=keras.initializers.VarianceScaling(**CONV_INITIALIZER_CONFIG),
                name=f"conv{index + 1}",
            )
            norm = pytorch_batch_norm(f"bn{index + 1}", self.synchronized)
            activation = keras.layers.LeakyReLU(negative_slope=0.1, name=f"activation{index + 1}")
            # Sub-layers made here must follow a `trainable=False` given at construction.
            conv.trainable = norm.trainable = self.trainable
            conv.build(shape)
            shape = conv.compute_output_shape(shape)
            norm.build(shape)
            self.convs.append(conv)
            self.norms.append(norm)
            self.activations.append(activation)
        self.built = True

    def call(self, inputs, training=None):
        x = self.input_activation(inputs)
        for conv, norm, activation in zip(self.convs, self.norms, self.activations, strict=True):
            x = activation(norm(conv(x), training=training))
        return x

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        config = super().get_config()
        config.update({"filters": self.filters, "synchronized": self.synchronized})
        return config
