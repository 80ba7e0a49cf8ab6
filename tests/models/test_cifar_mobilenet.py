import keras
import numpy as np
import pytest

from iekd_keras.models import cifar_mobilenet

# (channels, stride) of the 13 separable blocks, spelled out independently of the module.
PLAN = [(64, 1), (128, 1), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5
PLAN += [(1024, 1), (1024, 1)]


def trainable_count(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_weights)


def mobilenet_formula(num_classes, width_multiplier=1.0):
    """Trainable parameters of the CIFAR MobileNet, written out layer by layer."""
    total = 3 * 3 * 3 * 32 + 2 * 32  # stem conv (no bias) + BN
    in_planes = 32
    for planes, _ in PLAN:
        planes = int(planes * width_multiplier)
        total += 3 * 3 * in_planes + 2 * in_planes  # depthwise 3x3 + BN
        total += in_planes * planes + 2 * planes  # pointwise 1x1 + BN
        in_planes = planes
    return total + in_planes * num_classes + num_classes  # dense


def images(batch=2, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, 32, 32, 3)).astype("float32")


def test_parameter_count_matches_formula():
    count = trainable_count(cifar_mobilenet(num_classes=10))
    assert count == mobilenet_formula(10)
    assert 3.1e6 < count < 3.3e6


def test_width_multiplier_scales_blocks_but_not_stem():
    model = cifar_mobilenet(num_classes=100, width_multiplier=0.25)
    assert trainable_count(model) == mobilenet_formula(100, 0.25)
    assert model.get_layer("stem_conv").filters == 32
    assert tuple(model.outputs[1].shape) == (None, 8, 8, 256)


def test_outputs_are_logits_and_8x8x1024_features():
    model = cifar_mobilenet(num_classes=4)
    assert model.name == "mobilenet"
    logits, features = model(images(batch=3))
    assert tuple(logits.shape) == (3, 4)
    assert tuple(features.shape) == (3, 8, 8, 1024)


def test_only_two_depthwise_layers_are_strided():
    model = cifar_mobilenet()
    depthwise = [layer for layer in model.layers if isinstance(layer, keras.layers.DepthwiseConv2D)]
    assert len(depthwise) == 13
    strided = [layer.name for layer in depthwise if layer.strides == (2, 2)]
    assert strided == ["block4_depthwise", "block6_depthwise"]
    assert model.get_layer("block4_depthwise").output.shape[1:] == (16, 16, 128)


def test_features_are_the_map_fed_to_global_average_pooling():
    model = cifar_mobilenet(num_classes=3, width_multiplier=0.25)
    assert model.get_layer("avg_pool").input is model.get_layer("features").output
    logits, features = (np.asarray(t) for t in model(images(), training=False))
    kernel, bias = model.get_layer("logits").get_weights()
    np.testing.assert_allclose(
        logits, features.mean(axis=(1, 2)) @ kernel + bias, rtol=1e-4, atol=1e-5
    )


def test_depthwise_kernels_use_released_dw_conv_init_std():
    model = cifar_mobilenet()
    kernel = np.asarray(model.get_layer("block13_depthwise").kernel)  # 3x3x1024x1
    assert kernel.std() == pytest.approx(np.sqrt(2.0 / 9.0), rel=0.05)


@pytest.mark.parametrize("width_multiplier", [0, -1.0, 0.001, "1"])
def test_invalid_width_multiplier_is_rejected(width_multiplier):
    with pytest.raises(ValueError, match="width_multiplier"):
        cifar_mobilenet(width_multiplier=width_multiplier)
