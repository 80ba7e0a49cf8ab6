"""Prototype: a fused BatchNormalization for the TensorFlow backend (not in the library yet).

Keras 3 computes BatchNormalization on TensorFlow as `tf.nn.moments` + `tf.nn.batch_normalization`:
about ten element-wise and reduction kernels forward and more backward (Mul, Sub, Mean,
SquaredDifference, Tile, Sum, ...), each a full pass over the activation. TensorFlow's own
`FusedBatchNormV3` (a oneDNN kernel on x86, `_MklNativeFusedBatchNormV3`) does the forward in one
kernel and the backward in one `FusedBatchNormGradV3`, as PyTorch's BatchNorm2d does. The
profile (bench/profile_step.py) shows these BN kernels take a large share of a CIFAR ResNet
training step on CPU.

`FusedBatchNormalization` is a drop-in subclass: same weights, same config, same maths (the
moving variance is updated with the biased batch variance, as Keras does), and it falls back
to the Keras path for anything but the plain case (TensorFlow backend, 4-D channels-last
float32 input, no mask, no renorm, not synchronized). `patch_library()` makes the iekd_keras
model builders and the factor coders build it, for an A/B measurement in one process
(`--patches=fused_bn` of bench/step_cost.py, vs_torch.py, profile_step.py, and
bench/experiments/library_experiments.py); it edits no library file.
"""

import keras


class FusedBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` computed by TensorFlow's FusedBatchNormV3."""

    def _use_fused(self, inputs, mask):
        return (
            keras.backend.backend() == "tensorflow"
            and mask is None
            and not self.renorm
            and not self.synchronized
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
            and keras.backend.standardize_dtype(inputs.dtype) == "float32"
        )

    def call(self, inputs, training=None, mask=None):
        if not self._use_fused(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        channels = inputs.shape[-1]
        gamma = self.gamma if self.scale else tf.ones([channels], inputs.dtype)
        beta = self.beta if self.center else tf.zeros([channels], inputs.dtype)
        if training and self.trainable:
            empty = tf.constant([], dtype=inputs.dtype)
            outputs, mean, variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
                x=inputs,
                scale=tf.convert_to_tensor(gamma),
                offset=tf.convert_to_tensor(beta),
                mean=empty,
                variance=empty,
                epsilon=self.epsilon,
                exponential_avg_factor=1.0,
                data_format="NHWC",
                is_training=True,
            )
            # FusedBatchNormV3 returns the unbiased (n / (n - 1)) batch variance; Keras updates
            # its moving variance with the biased one.
            shape = tf.shape(inputs)
            count = tf.cast(shape[0] * shape[1] * shape[2], inputs.dtype)
            variance = variance * ((count - 1.0) / tf.maximum(count, 1.0))
            momentum = self.momentum
            self.moving_mean.assign(self.moving_mean * momentum + mean * (1.0 - momentum))
            self.moving_variance.assign(
                self.moving_variance * momentum + variance * (1.0 - momentum)
            )
            return outputs
        outputs, _, _, _, _, _ = tf.raw_ops.FusedBatchNormV3(
            x=inputs,
            scale=tf.convert_to_tensor(gamma),
            offset=tf.convert_to_tensor(beta),
            mean=tf.convert_to_tensor(self.moving_mean),
            variance=tf.convert_to_tensor(self.moving_variance),
            epsilon=self.epsilon,
            exponential_avg_factor=1.0,
            data_format="NHWC",
            is_training=False,
        )
        return outputs


def patch_library():
    """Makes iekd_keras build FusedBatchNormalization in its backbones and factor coders
    (models/_building_blocks.batch_norm, layers/factor_encoder.pytorch_batch_norm) from now on.
    Returns a function that undoes the patch."""
    from iekd_keras.layers import factor_encoder
    from iekd_keras.models import _building_blocks as blocks

    original_block, original_coder = blocks.batch_norm, factor_encoder.pytorch_batch_norm

    def batch_norm(x, name):
        return FusedBatchNormalization(
            momentum=blocks.BATCH_NORM_MOMENTUM, epsilon=blocks.BATCH_NORM_EPSILON, name=name
        )(x)

    def pytorch_batch_norm(name, synchronized=False):
        return FusedBatchNormalization(
            momentum=0.9, epsilon=1e-5, synchronized=synchronized, name=name
        )

    blocks.batch_norm = batch_norm
    factor_encoder.pytorch_batch_norm = pytorch_batch_norm

    def undo():
        blocks.batch_norm = original_block
        factor_encoder.pytorch_batch_norm = original_coder

    return undo
