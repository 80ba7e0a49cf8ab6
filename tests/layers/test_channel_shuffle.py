import keras
import numpy as np
import pytest

from iekd_keras.layers import ChannelShuffle

pytestmark = pytest.mark.backend_agnostic


def shuffle_as_pytorch(x_nhwc, groups):
    """ShuffleNet's NCHW shuffle (view as (N, g, C/g, H, W), swap the channel axes, flatten),
    applied to a channels-last array through transposes."""
    x = np.transpose(x_nhwc, (0, 3, 1, 2))
    n, c, h, w = x.shape
    x = x.reshape(n, groups, c // groups, h, w).transpose(0, 2, 1, 3, 4).reshape(n, c, h, w)
    return np.transpose(x, (0, 2, 3, 1))


def random_maps(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


@pytest.mark.parametrize("groups", [1, 2, 3, 4])
def test_equals_the_nchw_shuffle_of_pytorch(groups):
    x = random_maps((2, 3, 5, 12))
    shuffled = keras.ops.convert_to_numpy(ChannelShuffle(groups)(x))
    np.testing.assert_array_equal(shuffled, shuffle_as_pytorch(x, groups))


def test_interleaves_the_groups():
    x = np.arange(6, dtype="float32").reshape(1, 1, 1, 6)
    shuffled = keras.ops.convert_to_numpy(ChannelShuffle(groups=2)(x))
    np.testing.assert_array_equal(shuffled[0, 0, 0], [0, 3, 1, 4, 2, 5])


def test_shuffling_by_the_group_size_undoes_it():
    x = random_maps((2, 4, 4, 12))
    there = ChannelShuffle(groups=3)(x)
    back = keras.ops.convert_to_numpy(ChannelShuffle(groups=4)(there))
    np.testing.assert_array_equal(back, x)


def test_round_trips_through_a_keras_file_with_unknown_spatial_size(tmp_path):
    inputs = keras.Input(shape=(None, None, 6))
    model = keras.Model(inputs, ChannelShuffle(groups=3, name="shuffle")(inputs))
    path = tmp_path / "shuffle.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)  # safe mode
    assert isinstance(loaded.get_layer("shuffle"), ChannelShuffle)
    assert loaded.get_layer("shuffle").groups == 3
    x = random_maps((2, 5, 7, 6))
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(loaded(x)), shuffle_as_pytorch(x, groups=3)
    )


@pytest.mark.parametrize("groups", [0, -2, 1.5, True, "2"])
def test_groups_must_be_a_positive_integer(groups):
    with pytest.raises(ValueError, match="groups must be a positive integer"):
        ChannelShuffle(groups)


def test_channels_must_divide_into_the_groups():
    with pytest.raises(ValueError, match="divisible by groups=4; got 6 channels"):
        ChannelShuffle(groups=4)(random_maps((1, 2, 2, 6)))
