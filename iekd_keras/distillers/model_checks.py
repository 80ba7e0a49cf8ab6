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
