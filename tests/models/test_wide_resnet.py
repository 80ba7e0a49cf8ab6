import keras
import numpy as np
import pytest

from iekd_keras.models import wide_resnet


def trainable_count(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_weights)


def wrn_formula(depth, width, num_classes):
    """Trainable parameters of WRN-depth-width, written out layer by layer."""
    n = (depth - 4) // 6
    total = 3 * 3 * 3 * 16  # stem conv, no bias, no BN before the first block
    in_planes = 16
    for planes in (16 * width, 32 * width, 64 * width):
        for _ in range(n):
            total += 2 * in_planes  # bn1
            total += 3 * 3 * in_planes * planes  # conv1
            total += 2 * planes  # bn2
            total += 3 * 3 * planes * planes  # conv2
            if in_planes != planes:
                total += in_planes * planes  # 1x1 shortcut, no bias
            in_planes = planes
    total += 2 * in_planes  # final BN
    return total + in_planes * num_classes + num_classes  # dense


def images(batch=2, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, 32, 32, 3)).astype("float32")


def test_wrn_40_2_parameter_count_matches_formula_and_is_about_2_2m():
    count = trainable_count(wide_resnet(40, 2))
    assert count == wrn_formula(40, 2, 10)
    assert 2.2e6 <= count < 2.3e6  # the commonly quoted 2.2M


@pytest.mark.parametrize("depth, width", [(10, 1), (16, 1), (16, 2)])
def test_parameter_count_matches_formula(depth, width):
    assert trainable_count(wide_resnet(depth, width, num_classes=100)) == wrn_formula(
        depth, width, 100
    )


@pytest.mark.parametrize("width", [1, 2])
def test_outputs_are_logits_and_8x8_features_with_64k_channels(width):
    model = wide_resnet(10, width, num_classes=6)
    assert model.name == f"wrn_10_{width}"
    logits, features = model(images(batch=3))
    assert tuple(logits.shape) == (3, 6)
    assert tuple(features.shape) == (3, 8, 8, 64 * width)


def test_features_are_final_bn_relu_fed_to_global_average_pooling():
    model = wide_resnet(10, 2, num_classes=5)
    assert model.get_layer("avg_pool").input is model.get_layer("features").output
    assert model.get_layer("features").input is model.get_layer("final_bn").output
    logits, features = (np.asarray(t) for t in model(images(), training=False))
    kernel, bias = model.get_layer("logits").get_weights()
    np.testing.assert_allclose(
        logits, features.mean(axis=(1, 2)) @ kernel + bias, rtol=1e-4, atol=1e-5
    )


def test_block_wiring_follows_pre_activation_reference():
    model = wide_resnet(16, 2)
    # Channels change (16 -> 32): BN-ReLU of the input feeds both conv1 and the shortcut.
    relu1 = model.get_layer("group1_block1_relu1").output
    assert model.get_layer("group1_block1_conv1").input is relu1
    assert model.get_layer("group1_block1_shortcut").input is relu1
    shortcut = model.get_layer("group2_block1_shortcut")
    assert shortcut.kernel_size == (1, 1) and shortcut.strides == (2, 2)
    assert not shortcut.use_bias
    # Same channels: the identity shortcut carries the raw (not pre-activated) block input.
    block_input = model.get_layer("group1_block1_add").output
    assert model.get_layer("group1_block2_bn1").input is block_input
    assert model.get_layer("group1_block2_add").input[1] is block_input
    assert "group1_block2_shortcut" not in [layer.name for layer in model.layers]


def test_width_one_first_block_uses_identity_shortcut():
    model = wide_resnet(10, 1)
    names = [layer.name for layer in model.layers]
    assert "group1_block1_shortcut" not in names
    assert "group2_block1_shortcut" in names


def test_dropout_adds_layers_but_no_parameters():
    plain, dropped = wide_resnet(10, 1), wide_resnet(10, 1, dropout_rate=0.3)
    rates = [layer.rate for layer in dropped.layers if isinstance(layer, keras.layers.Dropout)]
    assert rates == [0.3, 0.3, 0.3]
    assert not [layer for layer in plain.layers if isinstance(layer, keras.layers.Dropout)]
    assert trainable_count(plain) == trainable_count(dropped)


@pytest.mark.parametrize("depth", [41, 4, "16"])
def test_invalid_depth_names_value_and_rule(depth):
    with pytest.raises(ValueError) as info:
        wide_resnet(depth, 2)
    assert f"depth={depth!r}" in str(info.value)
    assert "(depth - 4) % 6 == 0" in str(info.value)


@pytest.mark.parametrize("width", [0, -1, 1.5])
def test_invalid_width_names_value(width):
    with pytest.raises(ValueError, match=rf"width={width!r}.*>= 1"):
        wide_resnet(16, width)
