"""Shared pieces of the loss tests: tapped tiny models, a Distiller factory, numpy references."""

import keras
import numpy as np
from keras import ops

from iekd_keras import CoupledWeightDecaySGD, Distiller
from iekd_keras.layers import FactorAutoencoder
from iekd_keras.models import with_taps

NUM_CLASSES = 3


def tapped_backbone(channels=8, name="tiny", input_shape=(8, 8, 3), num_classes=NUM_CLASSES):
    """conv -> "stage1" (8x8) -> strided conv-BN-ReLU "features" (4x4) -> GAP -> Dense.

    Returned through `with_taps(..., ["stage1"])`: outputs [logits, features, stage1].
    """
    inputs = keras.Input(input_shape, name="images")
    x = keras.layers.Conv2D(channels // 2, 3, padding="same", name="conv1")(inputs)
    x = keras.layers.ReLU(name="stage1")(x)
    x = keras.layers.Conv2D(channels, 3, strides=2, padding="same", name="conv2")(x)
    x = keras.layers.BatchNormalization(momentum=0.9, name="bn")(x)
    features = keras.layers.ReLU(name="features")(x)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(features)
    logits = keras.layers.Dense(num_classes, name="logits")(pooled)
    return with_taps(keras.Model(inputs, [logits, features], name=name), ["stage1"])


def teacher_encoder(teacher, filters=4):
    autoencoder = FactorAutoencoder(filters, name="teacher_autoencoder")
    autoencoder.build(teacher.outputs[1].shape)
    return autoencoder.encoder


def make_distiller(teacher, student, terms, encoder=None, run_eagerly=True, **kwargs):
    if encoder is None:
        kwargs.setdefault("lambda_inh", 0.0)
        kwargs.setdefault("lambda_exp", 0.0)
    distiller = Distiller(teacher, student, encoder, distillation_losses=terms, **kwargs)
    return distiller.compile(optimizer=CoupledWeightDecaySGD(0.05), run_eagerly=run_eagerly)


def batches(count=16, seed=0, input_shape=(8, 8, 3), num_classes=NUM_CLASSES):
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(count, *input_shape)).astype("float32")
    labels = rng.integers(0, num_classes, size=(count,)).astype("int32")
    return images, labels


def snapshot(variables):
    return [np.array(ops.convert_to_numpy(v)) for v in variables]


def assert_all_changed(before, variables):
    after = snapshot(variables)
    unchanged = [
        v.path for v, b, a in zip(variables, before, after, strict=True) if np.array_equal(b, a)
    ]
    assert not unchanged, unchanged


def numpy_normalize_rows(x):
    x = np.asarray(x, "float64").reshape(len(x), -1)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def numpy_log_softmax(z):
    z = np.asarray(z, "float64")
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
