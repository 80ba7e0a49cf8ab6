"""Checks that a model fits the (logits, features) contract, with messages naming what is wrong."""


def two_output_shapes(model, role):
    """Returns the static (logits_shape, features_shape) of a two-output functional model."""
    outputs = getattr(model, "outputs", None)
    if not outputs or len(outputs) < 2:
        count = "no symbolic" if not outputs else f"{len(outputs)}"
        raise ValueError(
            f"The {role} {getattr(model, 'name', model)!r} has {count} outputs; expected a "
            "functional model returning [logits, features] (see iekd_keras.models.get_model, or "
            "iekd_keras.models.with_feature_output to tap a layer of your own model)."
        )
    logits_shape, features_shape = tuple(outputs[0].shape), tuple(outputs[1].shape)
    if len(features_shape) != 4:
        raise ValueError(
            f"The {role} {model.name!r} returns features of shape {features_shape}; expected a "
            "channels-last feature map (batch, height, width, channels)."
        )
    return logits_shape, features_shape


def output_names(model):
    """Names of a model's outputs: "logits", "features", then each further output's layer name."""
    names = ["logits", "features", *list(model.output_names)[2:]]
    if len(set(names)) != len(names):
        raise ValueError(f"The outputs of {model.name!r} have repeated names {names}.")
    return names


def named_output_shapes(model, role):
    """Static output shapes of a `[logits, features, ...]` model, by output name."""
    two_output_shapes(model, role)
    return {
        name: tuple(tensor.shape)
        for name, tensor in zip(output_names(model), model.outputs, strict=True)
    }


def named_outputs(model, outputs):
    """A model's output list as a dict by output name (see `output_names`)."""
    return dict(zip(output_names(model), outputs, strict=True))
