"""LinearWarmup and step_decay as loss-weight schedules."""

import keras
import numpy as np
import pytest

from iekd_keras.losses import LinearWarmup, step_decay
from iekd_keras.optimizers.schedules import epoch_step_decay

pytestmark = pytest.mark.backend_agnostic


def test_linear_warmup_values_and_serialisation():
    schedule = LinearWarmup(10.0, 4)
    assert [float(schedule(step)) for step in (0, 1, 2, 4, 100)] == [0.0, 2.5, 5.0, 10.0, 10.0]
    assert float(LinearWarmup(3.0, 0)(0)) == 3.0
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert isinstance(restored, LinearWarmup) and restored.get_config() == schedule.get_config()
    with pytest.raises(ValueError, match="warmup_steps=-1"):
        LinearWarmup(1.0, -1)
    with pytest.raises(ValueError, match="target=-2"):
        LinearWarmup(-2, 3)


def test_step_decay_switches_on_the_first_step_of_each_milestone_epoch():
    schedule = step_decay(50.0, [2, 3], 0.1, steps_per_epoch=5)
    values = [float(schedule(step)) for step in range(20)]
    np.testing.assert_allclose(values, [50.0] * 10 + [5.0] * 5 + [0.5] * 5, rtol=1e-6)
    reference = epoch_step_decay(50.0, [2, 3], 0.1, 5)
    assert schedule.get_config() == reference.get_config()
    assert step_decay(7.0, [], 0.1, 5) == 7.0
