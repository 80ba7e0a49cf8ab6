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


def old_linear_warmup(target, warmup_steps, steps):
    """The formula LinearWarmup had before it became a PolynomialDecay, in float32 numpy."""
    if warmup_steps == 0:
        return np.full(len(steps), target, np.float32)
    fraction = np.asarray(steps, np.float32) / np.float32(warmup_steps)
    return np.float32(target) * np.minimum(fraction, np.float32(1.0))


@pytest.mark.parametrize("target", [0.8, 1.0, 10.0, 50.0])
def test_linear_warmup_is_keras_polynomial_decay_with_the_old_values(target):
    for warmup_steps in (0, 1, 3, 4, 7, 13):
        schedule = LinearWarmup(target, warmup_steps)
        assert isinstance(schedule, keras.optimizers.schedules.PolynomialDecay)
        steps = list(range(2 * warmup_steps + 2))
        values = np.array([keras.ops.convert_to_numpy(schedule(step)) for step in steps])
        assert values.dtype == np.float32
        expected = old_linear_warmup(target, warmup_steps, steps)
        # Keras computes target - target * (1 - p) where the old class computed target * p: the
        # roundings differ by at most 2 float32 ulps of `target` (within 1e-7 for weights
        # <= 1); the ends (0 at step 0, `target` from `warmup_steps` on) are exact.
        np.testing.assert_allclose(values, expected, rtol=0, atol=max(1e-7, 2.4e-7 * target))
        assert values[0] == expected[0] and np.all(values[warmup_steps:] == np.float32(target))


def test_linear_warmup_saved_by_the_old_class_loads():
    # What `serialize_keras_object(LinearWarmup(0.8, 5))` wrote before the PolynomialDecay base.
    saved = {
        "module": "iekd_keras.losses.weights",
        "class_name": "LinearWarmup",
        "config": {"target": 0.8, "warmup_steps": 5},
        "registered_name": "iekd_keras>LinearWarmup",
    }
    restored = keras.saving.deserialize_keras_object(saved)
    assert isinstance(restored, LinearWarmup)
    assert restored.get_config() == {"target": 0.8, "warmup_steps": 5}
    assert keras.saving.serialize_keras_object(restored) == saved
    np.testing.assert_allclose(float(restored(2)), 0.32, rtol=1e-6)


def test_step_decay_switches_on_the_first_step_of_each_milestone_epoch():
    schedule = step_decay(50.0, [2, 3], 0.1, steps_per_epoch=5)
    values = [float(schedule(step)) for step in range(20)]
    np.testing.assert_allclose(values, [50.0] * 10 + [5.0] * 5 + [0.5] * 5, rtol=1e-6)
    reference = epoch_step_decay(50.0, [2, 3], 0.1, 5)
    assert schedule.get_config() == reference.get_config()
    assert step_decay(7.0, [], 0.1, 5) == 7.0
