"""Expose intermediate feature maps of a functional classifier as extra outputs."""

import difflib
import re

import keras

_NUM_SUGGESTIONS = 5
_STAGE_NAME = re.compile(r"stage\d+")


def _describe(obj):
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _spatial_layer_names(model):
    """Names of layers with a rank-4 (batch, height, width, channels) output, in graph order."""
    names = []
    for layer in model.layers:
        try:
            rank = len(layer.output.shape)
        except (AttributeError, ValueError, TypeError):
            continue
        if rank == 4:
            names.append(layer.name)
    return names


def _missing_layer_message(model, layer_name):
    names = [layer.name for layer in model.layers]
    close = difflib.get_close_matches(layer_name, names, n=_NUM_SUGGESTIONS, cutoff=0.5)
    late_maps = _spatial_layer_names(model)[-_NUM_SUGGESTIONS:]
    message = f"with_feature_output: model {model.name!r} has no layer named {layer_name!r}."
    if close:
        message += f" Closest names: {close}."
    if late_maps:
        message += f" Last layers with a 4-D feature-map output: {late_maps}."
    return message


def with_feature_output(model, layer_name, name=None):
    """Wrap a functional classifier so that it returns ``[logits, features]`` in one pass.

    The new model reuses the layers (and therefore the weights) of ``model``: its first
    output is ``model``'s only output and its second is the output of layer ``layer_name``,
    usually the last feature map before global average pooling. Nothing is copied, so
    training either model trains both. For a layer called more than once, its first call is
    used.

    Args:
        model: A single-output functional (or input-built Sequential) ``keras.Model``, e.g.
            ``keras.applications.ResNet50(weights=None, classifier_activation=None)``.
        layer_name: Name of the layer whose output becomes ``features``.
        name: Name of the new model; defaults to ``"{model.name}_with_features"``.

    Returns:
        A functional ``keras.Model`` with outputs ``[logits, features]``.

    Raises:
        TypeError: If ``model`` is not a functional Keras model with a symbolic graph.
        ValueError: If ``model`` has several outputs or no layer named ``layer_name``.

    Example:
        >>> base = keras.applications.ResNet50(weights=None, classifier_activation=None)
        >>> model = with_feature_output(base, "conv5_block3_out")
        >>> logits, features = model(images)  # (batch, 1000), (batch, 7, 7, 2048)
    """
    if not isinstance(model, keras.Model):
        raise TypeError(
            "with_feature_output expects a functional keras.Model (one built from keras.Input "
            f"tensors, such as a keras.applications model); got an object of type "
            f"{_describe(model)}."
        )
    try:
        model_inputs = model.inputs
        model_outputs = model.outputs
    except AttributeError:
        model_inputs = model_outputs = None
    if not model_inputs or not model_outputs:
        raise TypeError(
            f"with_feature_output expects a functional keras.Model, but {model.name!r} "
            f"({_describe(model)}) has no symbolic inputs/outputs: subclassed models and "
            "Sequential models built without keras.Input have no layer graph to tap. Rebuild "
            "it with the functional API (keras.Input -> layers -> keras.Model)."
        )
    if len(model_outputs) != 1:
        raise ValueError(
            f"with_feature_output expects a single-output classifier, but {model.name!r} has "
            f"{len(model_outputs)} outputs; build a one-output model first."
        )
    if not isinstance(layer_name, str):
        raise TypeError(f"with_feature_output: layer_name must be a string; got {layer_name!r}.")
    layer_names = {layer.name for layer in model.layers}
    if layer_name not in layer_names:
        raise ValueError(_missing_layer_message(model, layer_name))

    features = model.get_layer(layer_name).output
    try:
        inputs = model.input  # keeps a dict or nested input structure intact
    except AttributeError:
        inputs = model_inputs[0] if len(model_inputs) == 1 else model_inputs
    if name is None:
        name = f"{model.name}_with_features"
    try:
        return keras.Model(inputs=inputs, outputs=[model_outputs[0], features], name=name)
    except ValueError as error:
        raise ValueError(
            f"with_feature_output: the output of layer {layer_name!r} is not computed from the "
            f"inputs of {model.name!r} (is the layer shared with another model?): {error}"
        ) from error


def _stage_layer_names(model):
    return [layer.name for layer in model.layers if _STAGE_NAME.fullmatch(layer.name)]


def _unknown_taps_message(model, unknown):
    names = [layer.name for layer in model.layers]
    message = f"with_taps: model {model.name!r} has no layer named {unknown}."
    stages = _stage_layer_names(model)
    if stages:
        message += f" Stage taps available: {stages}."
    close = sorted(
        {c for name in unknown for c in difflib.get_close_matches(name, names, n=3, cutoff=0.6)}
    )
    if close:
        message += f" Closest names: {close}."
    late_maps = _spatial_layer_names(model)[-_NUM_SUGGESTIONS:]
    if late_maps:
        message += f" Last layers with a 4-D feature-map output: {late_maps}."
    return message


def with_taps(model, layer_names, name=None):
    """Wrap a ``[logits, features]`` model so that it also returns intermediate feature maps.

    The new model returns ``[logits, features, *taps]`` from ONE forward pass: it reuses the
    layers (and weights) of ``model``, and tap ``i`` is the output of layer ``layer_names[i]``.
    Keras names each output after the layer that produces it, so ``model.output_names[2:]``
    equals ``layer_names``, which is how `iekd_keras.Distiller` keys the extra outputs it passes
    to distillation terms. The backbones of this package hold parameter-free tap layers
    ``"stage1"``, ``"stage2"``, ... at the end of each stage (see each builder's docstring).
    For a layer called more than once, its first call is used.

    Args:
        model: A functional ``keras.Model`` whose first two outputs are logits and the
            feature map (e.g. from :func:`get_model` or :func:`with_feature_output`); any
            further outputs are dropped.
        layer_names: Names of the layers to tap, in order; unique, and neither of the first
            two outputs' layers.
        name: Name of the new model; defaults to ``"{model.name}_with_taps"``.

    Returns:
        A functional ``keras.Model`` with outputs ``[logits, features, *taps]``.

    Raises:
        TypeError: If ``model`` is not a functional Keras model with a symbolic graph.
        ValueError: If ``model`` has fewer than two outputs, a name is repeated or is one of
            the first two outputs, or no layer has a given name (the message lists the
            available stage taps).

    Example:
        >>> teacher = with_taps(get_model("resnet56"), ["stage1", "stage2", "stage3"])
        >>> logits, features, stage1, stage2, stage3 = teacher(images)
        >>> teacher.output_names[2:]
        ['stage1', 'stage2', 'stage3']
    """
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"with_taps expects a functional keras.Model; got an object of type {_describe(model)}."
        )
    try:
        model_outputs = model.outputs
    except AttributeError:
        model_outputs = None
    if not model_outputs:
        raise TypeError(
            f"with_taps expects a functional keras.Model, but {model.name!r} "
            f"({_describe(model)}) has no symbolic outputs to tap; rebuild it with the "
            "functional API."
        )
    if len(model_outputs) < 2:
        raise ValueError(
            f"with_taps expects a model returning [logits, features], but {model.name!r} has "
            f"{len(model_outputs)} output; use with_feature_output first."
        )
    if isinstance(layer_names, str) or not all(isinstance(n, str) for n in layer_names):
        raise TypeError(
            f"with_taps: layer_names must be a sequence of strings; got {layer_names!r}."
        )
    layer_names = list(layer_names)
    if len(set(layer_names)) != len(layer_names):
        raise ValueError(f"with_taps: layer_names {layer_names} repeat a name.")
    head = [tensor._keras_history[0].name for tensor in model_outputs[:2]]
    clashes = [n for n in layer_names if n in head]
    if clashes:
        raise ValueError(
            f"with_taps: {clashes} already are the first two outputs ({head}) of {model.name!r}."
        )
    known = {layer.name for layer in model.layers}
    unknown = [n for n in layer_names if n not in known]
    if unknown:
        raise ValueError(_unknown_taps_message(model, unknown))

    taps = [model.get_layer(n).output for n in layer_names]
    try:
        inputs = model.input
    except AttributeError:
        inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    if name is None:
        name = f"{model.name}_with_taps"
    return keras.Model(inputs=inputs, outputs=[*model_outputs[:2], *taps], name=name)
