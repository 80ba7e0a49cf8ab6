"""Representation diagnostics of the paper: linear CKA between teacher and student factors."""

import keras
from keras import ops


def linear_cka(x, y):
    """Linear centred kernel alignment between two sets of per-sample features (Kornblith et
    al. 2019): ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F), in [0, 1]; 1 for features equal
    up to an orthogonal transform and isotropic scaling. Each sample is flattened first.

    Example:
        >>> linear_cka(teacher_factor, inheritance_factor)  # scalar tensor
    """
    x = ops.cast(ops.reshape(x, (ops.shape(x)[0], -1)), "float32")
    y = ops.cast(ops.reshape(y, (ops.shape(y)[0], -1)), "float32")
    x = x - ops.mean(x, axis=0, keepdims=True)
    y = y - ops.mean(y, axis=0, keepdims=True)
    cross = ops.sum(ops.square(ops.matmul(ops.transpose(y), x)))
    x_norm = ops.sqrt(ops.sum(ops.square(ops.matmul(ops.transpose(x), x))))
    y_norm = ops.sqrt(ops.sum(ops.square(ops.matmul(ops.transpose(y), y))))
    return cross / ops.maximum(x_norm * y_norm, 1e-12)


def factor_similarities(distiller, images):
    """CKA of the teacher factor with the student's inheritance and exploration factors."""
    teacher_features = distiller.teacher(images, training=False)[1]
    teacher_factor = distiller.teacher_encoder(teacher_features, training=False)
    if distiller.factor_size is not None:
        teacher_factor = ops.image.resize(teacher_factor, distiller.factor_size, antialias=True)
    inheritance, exploration = distiller.feature_split(distiller.student(images)[1])
    return {
        "cka_inheritance": linear_cka(
            teacher_factor, distiller.inheritance_encoder(inheritance, training=False)
        ),
        "cka_exploration": linear_cka(
            teacher_factor, distiller.exploration_encoder(exploration, training=False)
        ),
    }


class FactorSimilarityLogger(keras.callbacks.Callback):
    """Adds `cka_inheritance` and `cka_exploration` (teacher factor vs the student's factors on
    a fixed batch of held-out images) to each epoch's logs, for TensorBoard and the CSV log.
    The paper's claim: the exploration factor is measurably less similar to the teacher's.

    Args:
        images: a fixed batch of (normalised) evaluation images.
    """

    def __init__(self, images):
        super().__init__()
        self.images = images

    def on_epoch_end(self, epoch, logs=None):
        if logs is None or not getattr(self.model, "use_ie", False):
            return
        for name, value in factor_similarities(self.model, self.images).items():
            logs[name] = float(ops.convert_to_numpy(value))
