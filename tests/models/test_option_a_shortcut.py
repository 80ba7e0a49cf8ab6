"""The option-A shortcut subsamples by a 1x1 stride-2 pooling: bit-identical to the strided
slice `x[:, ::2, ::2, :]` in values and gradients, for even and odd sizes."""

import importlib

import keras
import numpy as np
import pytest
from keras import ops

from tests.gradients import value_and_gradients

pytestmark = pytest.mark.backend_agnostic

# The package re-exports the function cifar_resnet, which hides the module of that name.
cifar_resnet_module = importlib.import_module("iekd_keras.models.cifar_resnet")


def sliced_shortcut(x, planes):
    """The shortcut as the strided slice it replaces."""
    pad = planes // 4
    return ops.pad(x[:, ::2, ::2, :], [[0, 0], [0, 0], [0, 0], [pad, pad]])


@pytest.mark.parametrize("size", [(8, 8), (7, 7), (6, 5), (1, 1), (2, 3)])
@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_values_and_gradients_equal_the_strided_slice_bit_for_bit(size, policy):
    keras.config.set_dtype_policy(policy)
    rng = np.random.default_rng(sum(size))
    dtype = keras.config.dtype_policy().compute_dtype
    x = keras.Variable(rng.normal(size=(3, *size, 4)).astype("float32"), dtype="float32")
    planes = 8
    rows, columns = (size[0] + 1) // 2, (size[1] + 1) // 2
    upstream = rng.normal(size=(3, rows, columns, 4 + 2 * (planes // 4))).astype("float32")

    def results(shortcut):
        def loss():
            out = shortcut(ops.cast(x, dtype), planes)
            return ops.sum(ops.cast(out, "float32") * upstream)

        out = shortcut(ops.cast(x, dtype), planes)
        _, (gradient,) = value_and_gradients(loss, [x])
        return ops.convert_to_numpy(ops.cast(out, "float32")), ops.convert_to_numpy(gradient)

    pooled, pooled_gradient = results(cifar_resnet_module._option_a_shortcut)
    sliced, sliced_gradient = results(sliced_shortcut)
    assert pooled.shape == sliced.shape == upstream.shape
    np.testing.assert_array_equal(pooled, sliced)
    np.testing.assert_array_equal(pooled_gradient, sliced_gradient)
    # Every second pixel gets its upstream gradient, the others none.
    assert np.count_nonzero(pooled_gradient) == 3 * rows * columns * 4
