"""Epoch-indexed learning-rate schedules turned into the per-step schedules Keras optimizers use."""

import keras


def epoch_step_decay(base_learning_rate, milestones, gamma, steps_per_epoch):
    """The paper's schedule: `base * gamma ** k` from epoch `milestones[k-1]` on (0-based).

    PyTorch's MultiStepLR is stepped once per epoch, so epochs 0-79 use 0.1, 80-119 0.01 and
    120-159 0.001 for milestones [80, 120]. Keras schedules see the optimizer's step count
    (0 for the first update) and `PiecewiseConstantDecay` switches AFTER a boundary, so the
    boundary of milestone m is `m * steps_per_epoch - 1`. Without milestones it is constant.

    Example:
        >>> schedule = epoch_step_decay(0.1, [80, 120], 0.1, steps_per_epoch=391)
        >>> float(schedule(80 * 391))  # first step of epoch 80
        0.01
    """
    milestones = [int(m) for m in milestones]
    if milestones != sorted(set(milestones)) or (milestones and milestones[0] < 1):
        raise ValueError(
            f"milestones={milestones} must be strictly increasing positive epoch numbers."
        )
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch={steps_per_epoch} must be at least 1.")
    if not milestones:
        return float(base_learning_rate)
    boundaries = [m * steps_per_epoch - 1 for m in milestones]
    values = [float(base_learning_rate) * gamma**k for k in range(len(milestones) + 1)]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
