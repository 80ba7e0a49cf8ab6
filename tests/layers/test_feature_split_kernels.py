"""FeatureSplit splits by `keras.ops.split`: bit-identical to the two channel slices it replaced,
in values and gradients, in both modes."""

import keras
import numpy as np
import pytest
from keras import ops

from iekd_keras.layers import FeatureSplit
from tests.gradients import value_and_gradients

pytestmark = pytest.mark.backend_agnostic


@pytest.mark.parametrize("mode", ["natural", "random"])
@pytest.mark.parametrize("ratio", [0.5, 0.3])
def test_split_equals_the_slices_in_values_and_gradients(mode, ratio):
    rng = np.random.default_rng(0)
    features = keras.Variable(rng.normal(size=(2, 3, 3, 10)).astype("float32"))
    layer = FeatureSplit(mode=mode, ratio=ratio, seed=4)
    layer.build(features.shape)
    count = layer.inheritance_channels(10)
    weights = rng.normal(size=(2, 3, 3, 10)).astype("float32")

    def slices(x):
        if mode == "random":
            x = ops.take(x, layer.permutation, axis=-1)
        return x[..., :count], x[..., count:]

    def results(split):
        def loss():
            first, second = split(features)
            return ops.sum(first * weights[..., :count]) + ops.sum(second * weights[..., count:])

        _, (gradient,) = value_and_gradients(loss, [features])
        return [ops.convert_to_numpy(t) for t in (*split(features), gradient)]

    for actual, expected in zip(results(layer), results(slices), strict=True):
        np.testing.assert_array_equal(actual, expected)


@pytest.mark.tensorflow_only
def test_tensorflow_runs_one_split_kernel_and_no_strided_slice():
    import tensorflow as tf

    layer = FeatureSplit()
    graph = (
        tf.function(lambda x: layer(x))
        .get_concrete_function(tf.TensorSpec((2, 4, 4, 8), "float32"))
        .graph
    )
    # Other kernels (a StridedSlice among them) only compute the split sizes from constants.
    on_features = [
        op.type
        for op in graph.get_operations()
        if op.inputs and op.inputs[0].shape.rank == 4 and op.type != "Identity"
    ]
    assert on_features == ["SplitV"], on_features
