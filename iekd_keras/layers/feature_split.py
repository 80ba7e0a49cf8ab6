"""Channel-wise split of the student's feature map into inheritance and exploration parts."""

import keras
import numpy as np
from keras import ops

MODES = ("natural", "random")


@keras.saving.register_keras_serializable(package="iekd_keras")
class FeatureSplit(keras.layers.Layer):
    """Splits a channels-last feature map into `(inheritance_part, exploration_part)`.

    The inheritance part gets floor(C * ratio) channels, the exploration part the rest.
    - `mode="natural"` (the released code's default): the first channels inherit, the rest explore.
    - `mode="random"` (the paper's wording): a permutation of the channels drawn ONCE with numpy
      from `seed` (the same on every backend), stored as a non-trainable weight so that it
      survives saving, loading and resuming. `seed=None` draws from the OS entropy.

    The split is loss-only: the student's classifier still sees every channel.

    Args:
        mode: "natural" or "random".
        ratio: fraction of channels that inherit, in (0, 1). The paper's best is 0.5 (Table 5).
        seed: seed of the random permutation (random mode only).

    Example:
        >>> inheritance, exploration = FeatureSplit()(keras.ops.ones((2, 8, 8, 64)))
        >>> inheritance.shape, exploration.shape
        ((2, 8, 8, 32), (2, 8, 8, 32))
    """

    def __init__(self, mode="natural", ratio=0.5, seed=None, **kwargs):
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ValueError(f"mode={mode!r} is not a split mode; expected one of {MODES}.")
        if not 0.0 < ratio < 1.0:
            raise ValueError(
                f"ratio={ratio!r} must lie strictly between 0 and 1 (the inheritance fraction)."
            )
        self.mode = mode
        self.ratio = float(ratio)
        self.seed = seed
        self.permutation = None

    def inheritance_channels(self, channels):
        """Number of inheritance channels for a feature map of `channels` channels."""
        count = int(channels * self.ratio)
        if count < 1 or count >= channels:
            raise ValueError(
                f"{self.name}: a feature map of {channels} channels cannot be split with "
                f"ratio={self.ratio}: each part needs at least one channel."
            )
        return count

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(f"{self.name}: the feature map's channel dimension must be known.")
        self.inheritance_channels(channels)
        if self.mode == "random":
            drawn = np.random.default_rng(self.seed).permutation(channels).astype("int32")
            self.permutation = self.add_weight(
                shape=(channels,),
                dtype="int32",
                initializer="zeros",
                trainable=False,
                name="permutation",
            )
            self.permutation.assign(drawn)
        self.built = True

    def call(self, features):
        channels = features.shape[-1]
        count = self.inheritance_channels(channels)
        if self.mode == "random":
            features = ops.take(features, self.permutation, axis=-1)
        # One Split kernel (and one Concat backward) rather than two slices and their scatters.
        inheritance, exploration = ops.split(features, [count], axis=-1)
        return inheritance, exploration

    def compute_output_shape(self, input_shape):
        count = self.inheritance_channels(input_shape[-1])
        prefix = tuple(input_shape[:-1])
        return (*prefix, count), (*prefix, input_shape[-1] - count)

    def get_config(self):
        config = super().get_config()
        config.update({"mode": self.mode, "ratio": self.ratio, "seed": self.seed})
        return config
