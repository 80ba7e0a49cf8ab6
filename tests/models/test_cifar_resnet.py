import keras
import numpy as np
import pytest

from iekd_keras.models import cifar_resnet


def trainable_count(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_weights)


def resnet_formula(depth, num_classes, shortcut, widths=(16, 16, 32, 64)):
    """Trainable parameters of the CIFAR ResNet, written out layer by layer."""
    n = (depth - 2) // 6
    stem, *stage_widths = widths
    total = 3 * 3 * 3 * stem + 2 * stem  # stem conv (no bias) + BN gamma/beta
    in_planes = stem
    for planes in stage_widths:
        for _ in range(n):
            total += 3 * 3 * in_planes * planes + 2 * planes  # conv1 + bn1
            total += 3 * 3 * planes * planes + 2 * planes  # conv2 + bn2
            if shortcut == "B" and in_planes != planes:
                total += in_planes * planes + 2 * planes  # 1x1 projection + BN
            in_planes = planes
    return total + in_planes * num_classes + num_classes  # dense


def images(batch=2, size=32, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, size, size, 3)).astype("float32")


def test_resnet20_shortcut_a_has_exactly_269722_trainable_parameters():
    assert trainable_count(cifar_resnet(20)) == 269_722


def test_resnet56_shortcut_a_has_exactly_853018_trainable_parameters():
    assert trainable_count(cifar_resnet(56)) == 853_018


@pytest.mark.parametrize("depth", [8, 20])
@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_parameter_count_matches_per_layer_formula(depth, shortcut):
    model = cifar_resnet(depth, num_classes=100, shortcut=shortcut)
    assert trainable_count(model) == resnet_formula(depth, 100, shortcut)


def test_formula_reproduces_published_counts():
    assert resnet_formula(20, 10, "A") == 269_722
    assert resnet_formula(20, 10, "B") == 272_474
    assert resnet_formula(56, 10, "B") == 855_770


def test_outputs_are_logits_and_8x8x64_features():
    model = cifar_resnet(8, num_classes=7)
    assert model.name == "resnet8"
    assert cifar_resnet(8, shortcut="b").name == "resnet8b"
    logits, features = model(images(batch=3))
    assert tuple(logits.shape) == (3, 7)
    assert tuple(features.shape) == (3, 8, 8, 64)
    assert len(model.outputs) == 2
    assert model.get_layer("features").output is model.outputs[1]


def test_features_are_the_map_fed_to_global_average_pooling():
    model = cifar_resnet(8, num_classes=5)
    assert model.get_layer("avg_pool").input is model.get_layer("features").output
    logits, features = (np.asarray(t) for t in model(images(), training=False))
    kernel, bias = model.get_layer("logits").get_weights()
    expected = features.mean(axis=(1, 2)) @ kernel + bias
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-5)
    assert (features >= 0).all()  # taken after the final ReLU


def test_shortcut_a_is_parameter_free_subsample_and_channel_zero_pad():
    model = cifar_resnet(8, shortcut="A")
    assert not [layer.name for layer in model.layers if "shortcut" in layer.name]
    block_input = model.get_layer("stage1_block1_relu2").output  # 32x32x16
    residual = model.get_layer("stage2_block1_add").input[1]  # 16x16x32
    probe = keras.Model(model.input, [block_input, residual])
    x_in, x_res = (np.asarray(t) for t in probe(images(), training=False))
    expected = np.pad(x_in[:, ::2, ::2, :], ((0, 0), (0, 0), (0, 0), (8, 8)))
    np.testing.assert_array_equal(x_res, expected)


def test_shortcut_b_uses_1x1_strided_projection_with_batch_norm():
    model = cifar_resnet(8, shortcut="B")
    conv = model.get_layer("stage3_block1_shortcut_conv")
    assert conv.kernel_size == (1, 1) and conv.strides == (2, 2) and not conv.use_bias
    assert isinstance(model.get_layer("stage3_block1_shortcut_bn"), keras.layers.BatchNormalization)


def test_stride_two_conv_pads_one_pixel_on_every_side_like_pytorch():
    model = cifar_resnet(8)
    conv = model.get_layer("stage2_block1_conv1")
    block_input = model.get_layer("stage1_block1_relu2").output
    probe = keras.Model(model.input, [block_input, conv.output])
    x_in, x_out = (np.asarray(t) for t in probe(images(), training=False))
    # Symmetric 1-pixel padding: the stride-2 result is the stride-1 result at even positions.
    dense = keras.ops.conv(x_in, conv.kernel, strides=1, padding="same")
    np.testing.assert_allclose(x_out, np.asarray(dense)[:, ::2, ::2, :], rtol=1e-4, atol=1e-5)


def test_batch_norm_and_initializer_settings_match_pytorch():
    model = cifar_resnet(8, num_classes=10)
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and all(bn.momentum == 0.9 and bn.epsilon == 1e-5 for bn in norms)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert all(not conv.use_bias for conv in convs)
    kernel = np.asarray(model.get_layer("stage3_block1_conv2").kernel)
    assert kernel.std() == pytest.approx(np.sqrt(2.0 / (9 * 64)), rel=0.05)
    bias = np.asarray(model.get_layer("logits").bias)
    assert np.abs(bias).max() <= 1.0 / np.sqrt(64) and np.abs(bias).max() > 0


@pytest.mark.parametrize("depth", [21, 2, 7, 0, "20"])
def test_invalid_depth_names_value_and_rule(depth):
    with pytest.raises(ValueError, match=r"depth") as info:
        cifar_resnet(depth)
    message = str(info.value)
    assert repr(depth) in message
    assert "(depth - 2) % 6 == 0" in message


def test_unknown_shortcut_is_rejected():
    with pytest.raises(ValueError, match=r"shortcut='C'.*'A'.*'B'"):
        cifar_resnet(20, shortcut="C")


X4_WIDTHS = (32, 64, 128, 256)


def test_x4_widths_project_in_stage_one_and_match_the_formula():
    model = cifar_resnet(8, num_classes=100, shortcut="B", widths=X4_WIDTHS)
    assert model.name == "resnet8_widths_32_64_128_256b"
    assert trainable_count(model) == resnet_formula(8, 100, "B", X4_WIDTHS) == 1_233_540
    projection = model.get_layer("stage1_block1_shortcut_conv")  # 32 -> 64 channels, stride 1
    assert projection.strides == (1, 1) and projection.kernel.shape == (1, 1, 32, 64)
    assert tuple(model.get_layer("stem_conv").output.shape) == (None, 32, 32, 32)
    assert tuple(model.outputs[1].shape) == (None, 8, 8, 256)


def test_shortcut_a_refuses_widths_its_zero_padding_cannot_reach():
    for widths in [(32, 64, 128, 256), (16, 16, 32, 48), [5, 5, 10, 20]]:
        with pytest.raises(ValueError, match=r"shortcut='A' cannot change widths") as info:
            cifar_resnet(8, shortcut="A", widths=widths)
        assert repr(tuple(widths)) in str(info.value) and "shortcut='B'" in str(info.value)


def test_shortcut_a_with_even_doubling_widths_builds():
    model = cifar_resnet(8, shortcut="A", widths=(8, 8, 16, 32))
    assert trainable_count(model) == resnet_formula(8, 10, "A", (8, 8, 16, 32))


def test_invalid_widths_name_the_value():
    for widths in [(16, 32, 64), (16, 16, 0, 64), (16, 16, 32, "64"), 16]:
        with pytest.raises(ValueError, match=r"widths must be four positive integers") as info:
            cifar_resnet(8, shortcut="B", widths=widths)
        assert repr(widths) in str(info.value)


def initializer_config(initializer):
    config = initializer.get_config()
    return (
        type(initializer).__name__,
        config.get("scale"),
        config.get("mode"),
        config.get("distribution"),
    )


def test_repdistiller_initialization_is_fan_out_convolutions_and_a_default_linear_layer():
    model = cifar_resnet(8, num_classes=100, shortcut="B", initialization="repdistiller")
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert {initializer_config(c.kernel_initializer) for c in convs} == {
        ("VarianceScaling", 2.0, "fan_out", "untruncated_normal")
    }
    dense = model.get_layer("logits")
    assert initializer_config(dense.kernel_initializer) == (
        "VarianceScaling",
        1.0 / 3.0,
        "fan_in",
        "uniform",
    )
    kernel, bias = (np.asarray(w) for w in dense.get_weights())
    assert np.abs(kernel).max() <= 1.0 / 8.0 and np.abs(bias).max() <= 1.0 / 8.0  # 1/sqrt(64)
    default = cifar_resnet(8, num_classes=100, shortcut="B")
    assert initializer_config(default.get_layer("stem_conv").kernel_initializer)[2] == "fan_in"


def test_unknown_initialization_is_rejected():
    with pytest.raises(ValueError, match=r"initialization='torch'.*'iekd', 'repdistiller'"):
        cifar_resnet(8, initialization="torch")
