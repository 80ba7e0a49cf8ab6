"""A grouped 2-D convolution that runs as plain convolutions on every backend."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="iekd_keras")
class GroupedConv2D(keras.layers.Conv2D):
    """Keras's ``Conv2D`` with ``groups > 1`` computed as one ordinary convolution per group.

    The layer is a ``keras.layers.Conv2D`` with the same arguments, config and weights: its
    kernel ``(kh, kw, in_channels // groups, filters)`` is the one ``Conv2D(groups=...)`` holds
    (PyTorch's grouped weight ``(filters, in_channels // groups, kh, kw)`` transposed), and group
    ``j`` of the output channels reads group ``j`` of the input channels, as in both. Only the
    computation differs: the input and the kernel are split into their ``groups`` parts, each pair
    is convolved and the results are concatenated. TensorFlow has no grouped convolution on the
    CPU, so Keras runs ``Conv2D(groups=...)`` there through an XLA function per call, which took
    7-10x longer for a ShuffleNet V1 training step on a 64-image CIFAR batch; the split runs
    TensorFlow's ordinary kernels. With ``groups=1`` it is ``Conv2D``.

    Example:
        >>> layer = GroupedConv2D(12, kernel_size=1, groups=3, use_bias=False)
        >>> layer(keras.ops.ones((2, 8, 8, 6))).shape
        (2, 8, 8, 12)
        >>> layer.kernel.shape
        (1, 1, 2, 12)
    """

    def convolution_op(self, inputs, kernel):
        if self.groups == 1:
            return super().convolution_op(inputs, kernel)
        channel_axis = -1 if self.data_format == "channels_last" else 1
        input_groups = ops.split(inputs, self.groups, axis=channel_axis)
        kernel_groups = ops.split(kernel, self.groups, axis=-1)
        outputs = [
            ops.conv(
                group_inputs,
                group_kernel,
                strides=list(self.strides),
                padding=self.padding,
                dilation_rate=self.dilation_rate,
                data_format=self.data_format,
            )
            for group_inputs, group_kernel in zip(input_groups, kernel_groups, strict=True)
        ]
        return ops.concatenate(outputs, axis=channel_axis)
