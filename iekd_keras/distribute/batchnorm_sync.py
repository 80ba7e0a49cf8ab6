"""Synchronised BatchNorm across replicas, switched on at build time and never saved as on.

Keras refuses `synchronized=True` on backends other than TensorFlow, so a model saved with it
could not be loaded elsewhere. The switch is therefore flipped on every BatchNormalization of a
built model for training, and flipped off around every save (`saved_without_sync`).
"""

import contextlib

import keras


def batch_norm_layers(models):
    """Every BatchNormalization layer inside `models` (nested models and layers included)."""
    found = {}
    for model in models:
        for layer in model._flatten_layers(include_self=True, recursive=True):
            if isinstance(layer, keras.layers.BatchNormalization):
                found[id(layer)] = layer
    return list(found.values())


def set_synchronized(models, synchronized):
    """Sets `synchronized` on every BatchNormalization of `models`; returns how many."""
    if synchronized and keras.backend.backend() != "tensorflow":
        raise ValueError(
            "sync_batchnorm=True needs the TensorFlow backend; KERAS_BACKEND is "
            f"{keras.backend.backend()!r}."
        )
    layers = batch_norm_layers(models)
    for layer in layers:
        layer.synchronized = synchronized
    return len(layers)


@contextlib.contextmanager
def saved_without_sync(model):
    """Saves made inside record `synchronized=False`; the previous flags come back after."""
    layers = batch_norm_layers([model])
    previous = [layer.synchronized for layer in layers]
    for layer in layers:
        layer.synchronized = False
    try:
        yield
    finally:
        for layer, value in zip(layers, previous, strict=True):
            layer.synchronized = value
