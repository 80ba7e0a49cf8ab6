import numpy as np
import pytest

from iekd_keras.models import available_models, get_model


def trainable_count(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_weights)


def test_available_models_lists_families():
    names = available_models()
    for depth in (8, 14, 20, 32, 44, 56, 110):
        assert f"resnet{depth}" in names and f"resnet{depth}b" in names
    assert "wrn_{depth}_{width}" in names
    assert "mobilenet" in names


@pytest.mark.parametrize(
    "name, expected_name, channels",
    [
        ("resnet8", "resnet8", 64),
        ("ResNet8B", "resnet8b", 64),
        ("wrn_10_2", "wrn_10_2", 128),
        ("WRN_16_1", "wrn_16_1", 64),
    ],
)
def test_names_build_expected_models(name, expected_name, channels):
    model = get_model(name, num_classes=7)
    assert model.name == expected_name
    assert tuple(model.outputs[0].shape) == (None, 7)
    assert tuple(model.outputs[1].shape) == (None, 8, 8, channels)


def test_suffix_b_selects_projection_shortcut():
    plain, projected = get_model("resnet8"), get_model("resnet8b")
    # Two 1x1 projections (16->32, 32->64), each with BN gamma/beta.
    extra = (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)
    assert trainable_count(projected) - trainable_count(plain) == extra


def test_mobilenet_and_keyword_arguments_are_forwarded():
    model = get_model("MobileNet", num_classes=3, width_multiplier=0.25, name="student")
    assert model.name == "student"
    assert tuple(model.outputs[1].shape) == (None, 8, 8, 256)
    wrn = get_model("wrn_10_1", dropout_rate=0.2)
    assert any("dropout" in layer.name for layer in wrn.layers)


def test_unknown_name_lists_valid_names_and_suggests_closest():
    with pytest.raises(ValueError) as info:
        get_model("resnet21")
    message = str(info.value)
    assert "'resnet21'" in message
    assert "resnet20b" in message and "wrn_{depth}_{width}" in message and "mobilenet" in message
    assert "Did you mean 'resnet20'?" in message


def test_misspelt_mobilenet_gets_suggestion():
    with pytest.raises(ValueError, match="Did you mean 'mobilenet'"):
        get_model("mobilnet")


def test_invalid_wrn_depth_reports_rule():
    with pytest.raises(ValueError, match=r"depth=41.*\(depth - 4\) % 6 == 0"):
        get_model("wrn_41_2")


def test_shortcut_keyword_conflicts_with_name_suffix():
    with pytest.raises(ValueError, match="suffix"):
        get_model("resnet20", shortcut="B")
