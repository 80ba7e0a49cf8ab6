"""The epoch-indexed LR schedule switches on the first step of each milestone epoch."""

import pytest

from iekd_keras.optimizers.schedules import epoch_step_decay


def test_paper_schedule_switches_on_epoch_boundaries():
    schedule = epoch_step_decay(0.1, [80, 120], 0.1, steps_per_epoch=391)
    expected = {0: 0.1, 80 * 391 - 1: 0.1, 80 * 391: 0.01, 120 * 391 - 1: 0.01, 120 * 391: 0.001}
    for step, value in expected.items():
        assert float(schedule(step)) == pytest.approx(value), step


def test_no_milestones_is_constant():
    assert epoch_step_decay(0.1, [], 0.1, steps_per_epoch=10) == 0.1


@pytest.mark.parametrize(
    "milestones, steps, message",
    [
        ([120, 80], 10, "strictly increasing"),
        ([0], 10, "strictly increasing"),
        ([5], 0, "steps_per_epoch=0"),
    ],
)
def test_invalid_schedules(milestones, steps, message):
    with pytest.raises(ValueError, match=message):
        epoch_step_decay(0.1, milestones, 0.1, steps)
