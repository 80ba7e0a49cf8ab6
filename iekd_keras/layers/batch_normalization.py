"""`keras.layers.BatchNormalization` computed by TensorFlow's fused kernel where it can be.

Keras 3 computes batch normalisation on TensorFlow as `moments` followed by
`batch_normalization`: about ten element-wise and reduction kernels forward and more backward,
each a full pass over the activation. TensorFlow's `FusedBatchNormV3` does the forward in one
kernel and the backward in one `FusedBatchNormGradV3` (as PyTorch's `BatchNorm2d` does).
"""

import keras

_FUSED_DTYPES = ("float32", "float16", "bfloat16")


@keras.saving.register_keras_serializable(package="iekd_keras")
class BatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` that runs TensorFlow's `FusedBatchNormV3`.

    The same class name, weights (names, paths, dtypes), config and maths as Keras's layer (the
    name keeps the keys of `.weights.h5` files, which Keras derives from class names): batch
    statistics in float32 also for float16 and bfloat16 inputs, and the moving variance updated
    with the biased batch variance, as Keras does. The fused kernel runs on the TensorFlow
    backend for a 4-D channels-last input of a float32, float16 or bfloat16 compute dtype,
    without mask, renorm or `synchronized`; anything else (and every other backend) runs Keras's
    own code.
    Weights saved from either class load into the other.

    Example:
        >>> norm = BatchNormalization(momentum=0.9, epsilon=1e-5, name="bn")
        >>> y = norm(keras.ops.ones((2, 4, 4, 8)), training=True)
    """

    def _runs_fused(self, inputs, mask):
        dtype = keras.backend.standardize_dtype(inputs.dtype)
        return (
            keras.backend.backend() == "tensorflow"
            and mask is None
            and not self.renorm
            and not self.synchronized
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
            and dtype in _FUSED_DTYPES
            and dtype == keras.backend.standardize_dtype(self.compute_dtype)
        )

    def call(self, inputs, training=None, mask=None):
        if not self._runs_fused(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        channels = inputs.shape[-1]
        scale = tf.cast(self.gamma, "float32") if self.scale else tf.ones([channels])
        offset = tf.cast(self.beta, "float32") if self.center else tf.zeros([channels])
        if training and self.trainable:
            empty = tf.constant([], dtype="float32")
            outputs, mean, variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
                x=inputs,
                scale=scale,
                offset=offset,
                mean=empty,
                variance=empty,
                epsilon=self.epsilon,
                exponential_avg_factor=1.0,
                data_format="NHWC",
                is_training=True,
            )
            # The kernel returns the unbiased batch variance (times n / (n - 1)); Keras updates
            # its moving variance with the biased one, which is 0 for a single value.
            shape = tf.shape(inputs)
            count = tf.cast(shape[0] * shape[1] * shape[2], "float32")
            variance = tf.where(count > 1.0, variance * ((count - 1.0) / count), 0.0)
            moving_mean = tf.cast(self.moving_mean, "float32")
            moving_variance = tf.cast(self.moving_variance, "float32")
            self.moving_mean.assign(moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(
                moving_variance * self.momentum + variance * (1.0 - self.momentum)
            )
            return outputs
        outputs, _, _, _, _, _ = tf.raw_ops.FusedBatchNormV3(
            x=inputs,
            scale=scale,
            offset=offset,
            mean=tf.cast(self.moving_mean, "float32"),
            variance=tf.cast(self.moving_variance, "float32"),
            epsilon=self.epsilon,
            exponential_avg_factor=1.0,
            data_format="NHWC",
            is_training=False,
        )
        return outputs
