"""CoupledWeightDecaySGD reproduces PyTorch's SGD(momentum, nesterov, weight_decay) updates."""

import keras
import numpy as np
import pytest
from keras import ops

from iekd_keras import CoupledWeightDecaySGD

pytestmark = pytest.mark.backend_agnostic

GRADIENTS = [np.array([0.5, -1.0, 2.0], "float32"), np.array([0.1, 0.3, -0.2], "float32")] * 2


def torch_style_sgd(weights, gradients, lr, momentum, decay, nesterov):
    """PyTorch's SGD update rule written out in numpy."""
    weights = weights.astype("float64")
    buffer = None
    for gradient in gradients:
        gradient = gradient + decay * weights
        buffer = gradient if buffer is None else momentum * buffer + gradient
        step = gradient + momentum * buffer if nesterov else buffer
        weights = weights - lr * step
    return weights


@pytest.mark.parametrize("nesterov", [True, False])
def test_matches_pytorch_update_rule(nesterov):
    start = np.array([1.0, -2.0, 0.5], "float32")
    variable = keras.Variable(start)
    optimizer = CoupledWeightDecaySGD(0.1, momentum=0.9, nesterov=nesterov, l2_decay=5e-2)
    for gradient in GRADIENTS:
        optimizer.apply_gradients([(ops.convert_to_tensor(gradient), variable)])
    expected = torch_style_sgd(start, GRADIENTS, 0.1, 0.9, 5e-2, nesterov)
    np.testing.assert_allclose(ops.convert_to_numpy(variable), expected, rtol=1e-5)


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
