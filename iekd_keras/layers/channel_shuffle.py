"""ShuffleNet's channel shuffle for channels-last feature maps."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="iekd_keras")
class ChannelShuffle(keras.layers.Layer):
    """Interleaves ``groups`` equal groups of channels: output channel ``i * groups + j`` is
    input channel ``j * (channels // groups) + i``.

    This is ShuffleNet's shuffle (``ShuffleBlock`` in RepDistiller's ``models/ShuffleNetv1.py``
    and ``models/ShuffleNetv2.py``), which views an NCHW map as ``(N, groups, C // groups, H, W)``,
    swaps the two channel axes and flattens them back, rendered here for channels-last maps. It
    has no weights; any spatial size and batch size work, the channel count must be known and
    divisible by ``groups``.

    Args:
        groups: Number of channel groups, a positive integer.

    Example:
        >>> x = keras.ops.reshape(keras.ops.arange(6.0), (1, 1, 1, 6))
        >>> keras.ops.convert_to_numpy(ChannelShuffle(groups=2)(x))[0, 0, 0]
        array([0., 3., 1., 4., 2., 5.], dtype=float32)
    """

    def __init__(self, groups, **kwargs):
        super().__init__(**kwargs)
        if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
            raise ValueError(f"ChannelShuffle: groups must be a positive integer; got {groups!r}.")
        self.groups = groups

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None or channels % self.groups:
            raise ValueError(
                f"{self.name}: the channel count must be known and divisible by "
                f"groups={self.groups}; got {channels!r} channels."
            )
        self.built = True

    def call(self, inputs):
        channels = inputs.shape[-1]
        # Rows of `groups` channel blocks; transposing them reads the blocks column by column.
        blocks = ops.reshape(inputs, (-1, self.groups, channels // self.groups))
        shuffled = ops.transpose(blocks, (0, 2, 1))
        return ops.reshape(shuffled, ops.shape(inputs))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "groups": self.groups}
