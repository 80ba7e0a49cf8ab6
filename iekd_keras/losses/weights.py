"""Loss weights: constants or Keras schedules of the optimizer step (`beta`, `alpha`, `lambda_inh`),
checked, evaluated at a step and serialised in one place."""

import keras

from iekd_keras.optimizers.schedules import epoch_step_decay


@keras.saving.register_keras_serializable(package="iekd_keras")
class LinearWarmup(keras.optimizers.schedules.PolynomialDecay):
    """A weight that grows linearly from 0 to `target` over `warmup_steps`, then stays there.

        w(step) = target * min(step / warmup_steps, 1)     (w = target if warmup_steps == 0)

    It is Keras's `PolynomialDecay(0.0, warmup_steps, end_learning_rate=target, power=1)`
    (a constant `target` when `warmup_steps == 0`), under its own name and config
    (`target`, `warmup_steps`). `step` is the optimizer's iteration count (0 for the first
    update), which the Distiller passes to its terms as `batch["step"]`; the value is float32.

    Args:
        target: the weight after the warm-up, >= 0.
        warmup_steps: number of optimizer steps to reach it, >= 0.

    Example:
        >>> crd = ContrastiveRepresentationDistillation(50000, beta=LinearWarmup(0.8, 391 * 5))
        >>> float(LinearWarmup(10.0, 4)(2))
        5.0
    """

    def __init__(self, target, warmup_steps):
        if isinstance(target, bool) or not isinstance(target, int | float) or not target >= 0:
            raise ValueError(f"LinearWarmup: target={target!r} must be a number >= 0.")
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0:
            raise ValueError(
                f"LinearWarmup: warmup_steps={warmup_steps!r} must be an integer >= 0."
            )
        self.target = float(target)
        self.warmup_steps = int(warmup_steps)
        # Without a warm-up both ends are `target`: the schedule is that constant.
        super().__init__(
            initial_learning_rate=self.target if self.warmup_steps == 0 else 0.0,
            decay_steps=max(self.warmup_steps, 1),
            end_learning_rate=self.target,
            power=1.0,
            name="LinearWarmup",
        )

    def get_config(self):
        return {"target": self.target, "warmup_steps": self.warmup_steps}


def step_decay(value, milestones_epochs, gamma, steps_per_epoch):
    """A weight multiplied by `gamma` at the first step of each milestone epoch (0-based).

    The loss-weight twin of the paper's learning-rate schedule: `value * gamma ** k` from epoch
    `milestones_epochs[k-1]` on; e.g. the "50 -> 5 -> 0.5 at epochs 80 and 120" variant of the
    IE weights (docs/method.md#loss-weights). It is
    `iekd_keras.optimizers.schedules.epoch_step_decay`, which puts the `PiecewiseConstantDecay`
    boundaries at `m * steps_per_epoch - 1` so that the switch happens on step `m *
    steps_per_epoch`, the first step of epoch m.

    Args:
        value: the weight before the first milestone.
        milestones_epochs: strictly increasing positive epoch numbers.
        gamma: factor applied at each milestone.
        steps_per_epoch: optimizer steps per epoch (from the dataset size and GLOBAL batch).

    Returns:
        A `keras.optimizers.schedules.PiecewiseConstantDecay`, or `float(value)` without
        milestones.

    Example:
        >>> weight = step_decay(50.0, [80, 120], 0.1, steps_per_epoch=391)
        >>> float(weight(80 * 391 - 1)), float(weight(80 * 391))
        (50.0, 5.0)
    """
    return epoch_step_decay(value, milestones_epochs, gamma, steps_per_epoch)


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
