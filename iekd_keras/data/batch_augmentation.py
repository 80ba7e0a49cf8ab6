"""Extra batch augmentation from Keras preprocessing layers (and, optionally, keras-cv)."""

import importlib

import keras

# Layers that mix labels need one-hot targets; the pipelines yield integer labels.
LABEL_MIXING = ("MixUp", "CutMix")


def build_augmentation_layers(specs):
    """Layers from config entries `{"name": "RandAugment", "kwargs": {...}}`.

    A bare name is looked up in `keras.layers`; `keras_cv.layers.GridMask` and other dotted
    names are imported from their module (keras-cv is the optional extra
    `pip install iekd_keras[keras-cv]`). The layers run on raw (0-255) training batches after
    the paper's crop and flip, and before normalisation.

    Example:
        >>> build_augmentation_layers([{"name": "RandAugment", "kwargs": {"seed": 0}}])
    """
    layers = []
    for spec in specs:
        spec = dict(spec)
        name = spec.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"Augmentation entry {spec} needs a layer 'name'.")
        unknown = set(spec) - {"name", "kwargs"}
        if unknown:
            raise ValueError(
                f"Augmentation entry {spec} has unknown keys {sorted(unknown)}; expected "
                "'name' and 'kwargs'."
            )
        if name.split(".")[-1] in LABEL_MIXING:
            raise ValueError(
                f"Augmentation layer {name!r} mixes labels and needs one-hot targets; the "
                "pipelines yield integer labels, so it is not supported."
            )
        layer_class = _resolve(name)
        layer = layer_class(**dict(spec.get("kwargs") or {}))
        if not isinstance(layer, keras.layers.Layer):
            raise ValueError(f"Augmentation {name!r} is not a Keras layer.")
        layers.append(layer)
    return layers


def _resolve(name):
    if "." not in name:
        if not hasattr(keras.layers, name):
            raise ValueError(f"keras.layers has no layer {name!r} (augmentation config).")
        return getattr(keras.layers, name)
    module_name, _, attribute = name.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        extra = " Install it with `pip install iekd_keras[keras-cv]`." if "keras_cv" in name else ""
        raise ValueError(
            f"Augmentation layer {name!r} needs the module {module_name!r}, which cannot be "
            f"imported ({error}).{extra}"
        ) from error
    if not hasattr(module, attribute):
        raise ValueError(f"{module_name} has no layer {attribute!r} (augmentation config).")
    return getattr(module, attribute)
