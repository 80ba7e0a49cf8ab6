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


REPDISTILLER_ARCHS = (
    "resnet8 resnet14 resnet20 resnet32 resnet44 resnet56 resnet110 resnet8x4 resnet32x4 "
    "ResNet50 wrn_16_1 wrn_16_2 wrn_40_1 wrn_40_2 vgg8 vgg11 vgg13 vgg16 vgg19 MobileNetV2 "
    "ShuffleV1 ShuffleV2"
).split()


def test_available_models_lists_every_repdistiller_network():
    names = available_models()
    assert [n for n in names if n.startswith("repdistiller/")] == [
        f"repdistiller/{arch}" for arch in REPDISTILLER_ARCHS
    ]


def test_repdistiller_name_builds_the_zoo_network():
    model = get_model("repdistiller/resnet32x4", num_classes=100)
    assert model.name == "repdistiller_resnet32x4"
    assert tuple(model.outputs[0].shape) == (None, 100)
    assert tuple(model.outputs[1].shape) == (None, 8, 8, 256)
    assert trainable_count(model) == 7_433_860


def test_repdistiller_names_are_case_insensitive_and_take_an_input_shape_and_a_name():
    model = get_model(" RepDistiller/VGG8", num_classes=3, input_shape=(64, 64, 3))
    assert model.name == "repdistiller_vgg8"
    assert "pool3" in [layer.name for layer in model.layers]  # RepDistiller's 64x64 rule
    assert get_model("repdistiller/resnet8", name="student").name == "student"


def test_repdistiller_model_refuses_builder_keywords():
    with pytest.raises(ValueError, match=r"'repdistiller/wrn_16_1'.*name only.*dropout_rate"):
        get_model("repdistiller/wrn_16_1", dropout_rate=0.3)


def test_unknown_repdistiller_name_lists_the_zoo_and_suggests_closest():
    with pytest.raises(ValueError) as info:
        get_model("repdistiller/resnet33")
    message = str(info.value)
    assert "'repdistiller/resnet33'" in message
    assert "repdistiller/resnet32x4" in message and "repdistiller/ShuffleV2" in message
    assert "Did you mean 'repdistiller/resnet32'?" in message
