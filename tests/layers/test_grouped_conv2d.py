import keras
import numpy as np
import pytest

from iekd_keras.layers import GroupedConv2D

pytestmark = pytest.mark.backend_agnostic


def random_array(shape, seed):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def grouped_pointwise(x, kernel, groups):
    """A grouped 1x1 convolution in numpy: output group j mixes input group j only."""
    group_in, filters = kernel.shape[2], kernel.shape[3]
    group_out = filters // groups
    outputs = [
        x[..., j * group_in : (j + 1) * group_in]
        @ kernel[0, 0, :, j * group_out : (j + 1) * group_out]
        for j in range(groups)
    ]
    return np.concatenate(outputs, axis=-1)


def test_pointwise_grouped_convolution_mixes_each_group_alone():
    layer = GroupedConv2D(12, 1, groups=3, use_bias=False)
    x = random_array((2, 4, 5, 6), seed=0)
    output = keras.ops.convert_to_numpy(layer(x))
    assert tuple(layer.kernel.shape) == (1, 1, 2, 12)
    expected = grouped_pointwise(x, keras.ops.convert_to_numpy(layer.kernel), groups=3)
    np.testing.assert_allclose(output, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("strides, padding", [(1, "same"), (2, "valid")])
def test_equals_keras_grouped_conv2d_with_the_same_weights(strides, padding):
    arguments = dict(filters=8, kernel_size=3, strides=strides, padding=padding, groups=2)
    grouped = GroupedConv2D(**arguments, bias_initializer="random_normal")
    reference = keras.layers.Conv2D(**arguments)
    x = random_array((2, 9, 9, 4), seed=1)
    grouped.build(x.shape)
    reference.build(x.shape)
    reference.set_weights(grouped.get_weights())
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(grouped(x)),
        keras.ops.convert_to_numpy(reference(x)),
        rtol=1e-5,
        atol=1e-5,
    )


def test_is_a_conv2d_and_round_trips_through_a_keras_file(tmp_path):
    inputs = keras.Input(shape=(6, 6, 6))
    layer = GroupedConv2D(9, 1, groups=3, name="grouped")
    model = keras.Model(inputs, layer(inputs))
    assert isinstance(layer, keras.layers.Conv2D)
    path = tmp_path / "grouped.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)  # safe mode
    assert type(loaded.get_layer("grouped")) is GroupedConv2D
    assert loaded.get_layer("grouped").groups == 3
    x = random_array((2, 6, 6, 6), seed=2)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(loaded(x)), keras.ops.convert_to_numpy(model(x))
    )
