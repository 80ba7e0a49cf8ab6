"""CoupledWeightDecaySGD equals PyTorch's SGD(momentum, nesterov, weight_decay) step for step."""

import json

import keras
import numpy as np
import pytest
from keras import ops

from iekd_keras import CoupledWeightDecaySGD
from iekd_keras.experiment.callbacks import RestoredStateCheck
from iekd_keras.optimizers.schedules import epoch_step_decay

pytestmark = pytest.mark.backend_agnostic

GRADIENTS = [np.array([0.5, -1.0, 2.0], "float32"), np.array([0.1, 0.3, -0.2], "float32")] * 2

# 36 steps of 4 per epoch with drops at epochs 4 and 8: the rate of step t, written out.
STEPS, STEPS_PER_EPOCH, MILESTONES = 36, 4, (4, 8)
RATES = [0.1] * 16 + [0.01] * 16 + [0.001] * 4


def torch_style_sgd(weights, gradients, rates, momentum, decay, nesterov):
    """PyTorch's documented SGD update (dampening 0) in float64 numpy, one rate per step."""
    weights = [w.astype("float64") for w in weights]
    buffers = [None] * len(weights)
    for step_gradients, lr in zip(gradients, rates, strict=True):
        for i, gradient in enumerate(step_gradients):
            g = gradient + decay * weights[i]
            buffers[i] = g if buffers[i] is None else momentum * buffers[i] + g
            direction = g + momentum * buffers[i] if nesterov else buffers[i]
            weights[i] = weights[i] - lr * direction
    return weights


def keras_style_sgd(weights, gradients, rates, momentum, decay, nesterov):
    """Keras's SGD velocity (the rate inside it) with the same coupled decay, for contrast."""
    weights = [w.astype("float64") for w in weights]
    velocities = [np.zeros_like(w) for w in weights]
    for step_gradients, lr in zip(gradients, rates, strict=True):
        for i, gradient in enumerate(step_gradients):
            g = gradient + decay * weights[i]
            velocities[i] = momentum * velocities[i] - lr * g
            step = momentum * velocities[i] - lr * g if nesterov else velocities[i]
            weights[i] = weights[i] + step
    return weights


def random_problem(seed=0):
    """Three variables kept away from zero (so relative error is meaningful) and their gradients."""
    rng = np.random.default_rng(seed)
    shapes = [(3,), (2, 2), (5,)]
    starts = [(rng.uniform(2, 3, s) * rng.choice([-1, 1], s)).astype("float32") for s in shapes]
    gradients = [[rng.normal(0, 0.05, s).astype("float32") for s in shapes] for _ in range(STEPS)]
    return starts, gradients


@pytest.mark.parametrize("nesterov", [True, False])
@pytest.mark.parametrize("decay", [0.0, 5e-2])
@pytest.mark.parametrize("rate_source", ["schedule", "assigned"])
def test_matches_pytorch_across_learning_rate_drops(nesterov, decay, rate_source):
    starts, gradients = random_problem()
    variables = [keras.Variable(start) for start in starts]
    if rate_source == "schedule":
        rate = epoch_step_decay(0.1, MILESTONES, 0.1, STEPS_PER_EPOCH)
    else:  # set between steps, as ReduceLROnPlateau does
        rate = 0.1
    optimizer = CoupledWeightDecaySGD(rate, momentum=0.9, nesterov=nesterov, l2_decay=decay)
    for step, step_gradients in enumerate(gradients):
        if rate_source == "assigned":
            optimizer.learning_rate = RATES[step]
        tensors = [ops.convert_to_tensor(gradient) for gradient in step_gradients]
        optimizer.apply_gradients(zip(tensors, variables, strict=True))
    expected = torch_style_sgd(starts, gradients, RATES, 0.9, decay, nesterov)
    for variable, want in zip(variables, expected, strict=True):
        np.testing.assert_allclose(ops.convert_to_numpy(variable), want, rtol=1e-6, atol=0)
    # The drops matter: Keras's own velocity rule ends elsewhere by far more than the tolerance.
    keras_rule = keras_style_sgd(starts, gradients, RATES, 0.9, decay, nesterov)
    gap = max(np.max(np.abs(k - t) / np.abs(t)) for k, t in zip(keras_rule, expected, strict=True))
    assert gap > 1e-3


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="stateless_apply is a JAX path")
def test_stateless_apply_matches_pytorch_across_a_drop():
    starts, gradients = random_problem(seed=1)
    variables = [keras.Variable(start) for start in starts]
    optimizer = CoupledWeightDecaySGD(epoch_step_decay(0.1, MILESTONES, 0.1, STEPS_PER_EPOCH))
    optimizer.build(variables)
    values = [ops.convert_to_tensor(start) for start in starts]
    state = [ops.convert_to_tensor(v) for v in optimizer.variables]
    for step_gradients in gradients:
        values, state = optimizer.stateless_apply(state, step_gradients, values)
    expected = torch_style_sgd(starts, gradients, RATES, 0.9, 5e-4, True)
    for value, want in zip(values, expected, strict=True):
        np.testing.assert_allclose(ops.convert_to_numpy(value), want, rtol=1e-6, atol=0)


def test_decay_changes_the_update_only_through_the_gradient():
    start = np.array([1.0, -2.0, 0.5], "float32")
    plain, decayed = keras.Variable(start), keras.Variable(start)
    CoupledWeightDecaySGD(0.1, momentum=0.0, l2_decay=0.0).apply_gradients(
        [(ops.convert_to_tensor(GRADIENTS[0] + 0.01 * start), plain)]
    )
    CoupledWeightDecaySGD(0.1, momentum=0.0, l2_decay=0.01).apply_gradients(
        [(ops.convert_to_tensor(GRADIENTS[0]), decayed)]
    )
    np.testing.assert_allclose(ops.convert_to_numpy(decayed), ops.convert_to_numpy(plain))


def test_config_round_trip_and_errors():
    optimizer = CoupledWeightDecaySGD(0.05, l2_decay=1e-4)
    restored = CoupledWeightDecaySGD.from_config(optimizer.get_config())
    assert restored.l2_decay == 1e-4 and restored.nesterov and restored.momentum == 0.9
    with pytest.raises(ValueError, match="l2_decay=-1 must be a non-negative"):
        CoupledWeightDecaySGD(l2_decay=-1)
    with pytest.raises(ValueError, match="weight_decay=0.1 is Keras's decoupled decay"):
        CoupledWeightDecaySGD(weight_decay=0.1)
    with pytest.raises(ValueError, match=r"momentum=1.5 must be a number in \[0, 1\]"):
        CoupledWeightDecaySGD(momentum=1.5)


# Resuming: 5 epochs of 3 steps, drops at epochs 2 and 3, the first run dies inside epoch 2.
EPOCHS, STEPS_PER_FIT_EPOCH = 5, 3


class DieAt(keras.callbacks.Callback):
    """Stands for a killed run: raises after `step` steps of training."""

    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations) == self.step:
            raise RuntimeError("killed")


def fit_tiny_model(backup_dir, optimizer, epochs=EPOCHS, extra=()):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(optimizer=optimizer, loss="mse")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4 * STEPS_PER_FIT_EPOCH, 4)).astype("float32")
    y = rng.normal(size=(4 * STEPS_PER_FIT_EPOCH, 3)).astype("float32")
    callbacks = [
        keras.callbacks.BackupAndRestore(str(backup_dir), delete_checkpoint=False),
        RestoredStateCheck(backup_dir, STEPS_PER_FIT_EPOCH),
        *extra,
    ]
    model.fit(x, y, batch_size=4, epochs=epochs, shuffle=False, verbose=0, callbacks=callbacks)
    return model


def scheduled_sgd():
    return CoupledWeightDecaySGD(epoch_step_decay(0.1, (2, 3), 0.1, STEPS_PER_FIT_EPOCH))


def test_resume_across_learning_rate_drops_equals_an_uninterrupted_run(tmp_path):
    reference = fit_tiny_model(tmp_path / "reference", scheduled_sgd())
    with pytest.raises(RuntimeError, match="killed"):
        fit_tiny_model(tmp_path / "resumed", scheduled_sgd(), extra=[DieAt(7)])
    assert json.loads((tmp_path / "resumed" / "training_metadata.json").read_text())["epoch"] == 2
    resumed = fit_tiny_model(tmp_path / "resumed", scheduled_sgd())
    assert int(resumed.optimizer.iterations) == EPOCHS * STEPS_PER_FIT_EPOCH
    for got, want in zip(resumed.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(resumed.optimizer.variables, reference.optimizer.variables, strict=True):
        np.testing.assert_array_equal(ops.convert_to_numpy(got), ops.convert_to_numpy(want))


def test_a_backup_of_the_older_velocity_state_is_refused(tmp_path):
    # The older CoupledWeightDecaySGD was a keras SGD subclass: the same slots, no state_format.
    older = keras.optimizers.SGD(
        epoch_step_decay(0.1, (2, 3), 0.1, STEPS_PER_FIT_EPOCH), momentum=0.9, nesterov=True
    )
    fit_tiny_model(tmp_path, older, epochs=1)
    with pytest.raises(ValueError, match="saved by an older CoupledWeightDecaySGD .* delete the"):
        fit_tiny_model(tmp_path, scheduled_sgd())
