"""Each backbone starts from the initialisation of its reference file, layer type by layer type.

Statistical checks with the fixed test seed: every kernel's standard deviation must lie within
four standard errors of the reference formula, so a fan-in/fan-out mix-up (a factor
sqrt(out/in) on every layer whose channel count changes) or a wrong classifier rule fails.
Initialisation does not depend on the input size, so the models are built small.
"""

import keras
import numpy as np
import pytest
from keras import ops

from iekd_keras.layers import BatchNormalization
from iekd_keras.models import cifar_mobilenet, cifar_resnet, imagenet_resnet, wide_resnet

# Fraction of a normal sample beyond two standard deviations; a truncated normal has none.
NORMAL_TAIL_BEYOND_TWO_SIGMA = 0.0455


def values(variable):
    return ops.convert_to_numpy(variable).astype("float64")


def layers_of(model, layer_type):
    """Layers of exactly `layer_type` (DepthwiseConv2D is not a Conv2D in Keras 3)."""
    return [layer for layer in model.layers if type(layer) is layer_type]


def assert_normal_std(kernel, expected_std, label):
    """Mean about 0 and standard deviation within four standard errors of `expected_std`."""
    count = kernel.size
    assert abs(kernel.mean()) < 4 * expected_std / np.sqrt(count), label
    tolerance = 4 / np.sqrt(2 * count)
    assert kernel.std() == pytest.approx(expected_std, rel=tolerance), (
        f"{label}: std {kernel.std():.5f}, expected {expected_std:.5f} (rel tol {tolerance:.3f})"
    )


def assert_conv_kernels(model, fan_mode):
    """Every Conv2D kernel (kh, kw, cin, cout) is normal with std sqrt(2 / fan)."""
    convs = layers_of(model, keras.layers.Conv2D)
    assert convs
    standardised = []
    for conv in convs:
        kernel = values(conv.kernel)
        kh, kw, cin, cout = kernel.shape
        fan = kh * kw * (cout if fan_mode == "fan_out" else cin)
        expected = np.sqrt(2.0 / fan)
        assert_normal_std(kernel, expected, conv.name)
        standardised.append(kernel.ravel() / expected)
    # Untruncated: the pooled kernels have the normal's two-sigma tail.
    tail = np.mean(np.abs(np.concatenate(standardised)) > 2)
    assert tail == pytest.approx(NORMAL_TAIL_BEYOND_TWO_SIGMA, rel=0.1)


def assert_pytorch_linear_uniform(weights, fan_in, label):
    """Uniform in +-1/sqrt(fan_in): within the bound, reaching near it, with std bound/sqrt(3)."""
    bound = 1.0 / np.sqrt(fan_in)
    assert np.abs(weights).max() <= bound, label
    assert np.abs(weights).max() > 0.8 * bound, label
    if weights.size >= 1000:
        assert_normal_std(weights, bound / np.sqrt(3), label)


def assert_batch_norms_are_identity_at_start(model):
    """Weight 1 and bias 0 everywhere (zero_init_residual=False), fresh running statistics."""
    norms = layers_of(model, BatchNormalization)
    assert norms
    for norm in norms:
        np.testing.assert_array_equal(values(norm.gamma), 1.0)
        np.testing.assert_array_equal(values(norm.beta), 0.0)
        np.testing.assert_array_equal(values(norm.moving_mean), 0.0)
        np.testing.assert_array_equal(values(norm.moving_variance), 1.0)


def classifier(model):
    dense = model.get_layer("logits")
    return values(dense.kernel), values(dense.bias)


def test_wide_resnet_follows_released_wide_resnet_init():
    # WRN-16-2: 16 -> 32 -> 64 -> 128 channels, so fan-in and fan-out differ in most layers.
    model = wide_resnet(16, 2, num_classes=100, input_shape=(8, 8, 3))
    assert_conv_kernels(model, "fan_out")
    assert_batch_norms_are_identity_at_start(model)
    kernel, bias = classifier(model)
    assert_pytorch_linear_uniform(kernel, 128, "logits kernel")
    np.testing.assert_array_equal(bias, 0.0)


def test_cifar_mobilenet_follows_released_mobilenet_reset_parameters():
    model = cifar_mobilenet(num_classes=100, input_shape=(8, 8, 3))
    # Stem conv_init and pointwise conv_init: kaiming_normal_(mode="fan_out").
    assert_conv_kernels(model, "fan_out")
    # dw_conv_init: std sqrt(2 / (kh * kw)) whatever the channel count.
    depthwise = layers_of(model, keras.layers.DepthwiseConv2D)
    assert len(depthwise) == 13
    for layer in depthwise:
        assert_normal_std(values(layer.kernel), np.sqrt(2.0 / 9.0), layer.name)
    assert_batch_norms_are_identity_at_start(model)
    # linear_init: weight N(0, 0.01), untruncated; zero bias.
    kernel, bias = classifier(model)
    assert_normal_std(kernel, 0.01, "logits kernel")
    assert np.mean(np.abs(kernel) > 0.02) == pytest.approx(NORMAL_TAIL_BEYOND_TWO_SIGMA, rel=0.15)
    np.testing.assert_array_equal(bias, 0.0)


def test_imagenet_resnet_follows_torchvision_init():
    model = imagenet_resnet(18, num_classes=100, input_shape=(32, 32, 3))
    # Includes the 7x7 stem (3 -> 64 channels: fan-out 3136 against fan-in 147).
    assert_conv_kernels(model, "fan_out")
    assert_batch_norms_are_identity_at_start(model)
    kernel, bias = classifier(model)
    assert_pytorch_linear_uniform(kernel, 512, "logits kernel")
    assert_pytorch_linear_uniform(bias, 512, "logits bias")


@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_cifar_resnet_follows_released_resnet_weights_init(shortcut):
    # _weights_init: kaiming_normal_ (fan-in) on convolutions and the linear weight; the linear
    # bias keeps nn.Linear's default.
    model = cifar_resnet(8, num_classes=100, input_shape=(8, 8, 3), shortcut=shortcut)
    assert_conv_kernels(model, "fan_in")
    assert_batch_norms_are_identity_at_start(model)
    kernel, bias = classifier(model)
    assert_normal_std(kernel, np.sqrt(2.0 / 64), "logits kernel")
    assert_pytorch_linear_uniform(bias, 64, "logits bias")
