"""Loss weights that may change over training: constants or Keras schedules of the step."""

import keras


def check_loss_weight(name, value):
    """A non-negative number, or a Keras schedule (`keras.optimizers.schedules`)."""
    if isinstance(value, keras.optimizers.schedules.LearningRateSchedule):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(
            f"{name}={value!r} must be a non-negative number or a "
            "keras.optimizers.schedules.LearningRateSchedule of the training step."
        )
    return float(value)


def loss_weight_at(value, step):
    """The weight at optimizer step `step` (the optimizer's iteration count, checkpointed)."""
    if isinstance(value, keras.optimizers.schedules.LearningRateSchedule):
        return keras.ops.cast(value(step), "float32")
    return value


def is_switched_on(value):
    """Whether a weight can be non-zero at some step."""
    return not (isinstance(value, float) and value == 0.0)


def serialize_loss_weight(value):
    if isinstance(value, keras.optimizers.schedules.LearningRateSchedule):
        return keras.saving.serialize_keras_object(value)
    return value


def deserialize_loss_weight(value):
    return keras.saving.deserialize_keras_object(value) if isinstance(value, dict) else value


def from_config_with_weights(cls, config, keys):
    """`cls(**config)` with the loss weights under `keys` deserialised (numbers or schedules)."""
    config = dict(config)
    for key in keys:
        config[key] = deserialize_loss_weight(config[key])
    return cls(**config)
