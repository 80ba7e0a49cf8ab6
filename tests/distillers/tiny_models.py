"""Tiny two-output models ([logits, features]) for fast distiller tests."""

import keras
import numpy as np


def tiny_backbone(
    num_classes=3, channels=8, name="tiny", input_shape=(8, 8, 3), synchronized=False
):
    """conv-BN-ReLU (features, 4x4xchannels) -> GAP -> Dense: one forward pass, two outputs.

    `synchronized=True` (TensorFlow) makes the BatchNorm use global-batch statistics under a
    tf.distribute strategy, as one device does.
    """
    inputs = keras.Input(input_shape, name="images")
    x = keras.layers.Conv2D(channels, 3, strides=2, padding="same", name="conv")(inputs)
    x = keras.layers.BatchNormalization(momentum=0.9, synchronized=synchronized, name="bn")(x)
    features = keras.layers.ReLU(name="features")(x)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(features)
    logits = keras.layers.Dense(num_classes, name="logits")(pooled)
    return keras.Model(inputs, [logits, features], name=name)


def tiny_batches(count=16, num_classes=3, seed=0, input_shape=(8, 8, 3)):
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(count, *input_shape)).astype("float32")
    labels = rng.integers(0, num_classes, size=(count,)).astype("int32")
    return images, labels
