"""Stage-tap layers in every backbone and `with_taps`, which exposes them as extra outputs."""

import keras
import numpy as np
import pytest

from iekd_keras.models import get_model, with_feature_output, with_taps


def images(shape, batch=2, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, *shape)).astype("float32")


BACKBONES = [
    # name, kwargs, input shape, {stage: spatial size}
    ("resnet8", {}, (8, 8, 3), {"stage1": 8, "stage2": 4, "stage3": 2}),
    ("resnet8b", {}, (8, 8, 3), {"stage1": 8, "stage2": 4, "stage3": 2}),
    ("wrn_10_1", {}, (8, 8, 3), {"stage1": 8, "stage2": 4, "stage3": 2}),
    ("mobilenet", {"width_multiplier": 0.0625}, (8, 8, 3), {"stage1": 8, "stage2": 4, "stage3": 2}),
    ("resnet18", {}, (32, 32, 3), {"stage1": 8, "stage2": 4, "stage3": 2, "stage4": 1}),
]


@pytest.mark.parametrize("name, kwargs, shape, stages", BACKBONES, ids=[b[0] for b in BACKBONES])
def test_every_backbone_has_parameter_free_stage_taps(name, kwargs, shape, stages):
    model = get_model(name, 5, shape, **kwargs)
    stage_layers = [layer for layer in model.layers if layer.name in stages]
    assert [layer.name for layer in stage_layers] == list(stages)
    assert all(not layer.weights for layer in stage_layers)
    tapped = with_taps(model, list(stages))
    assert tapped.output_names == ["logits", "features", *stages]
    assert tapped.count_params() == model.count_params()
    assert {id(w) for w in tapped.weights} == {id(w) for w in model.weights}
    x = images(shape)
    logits, features, *taps = (np.asarray(t) for t in tapped(x, training=False))
    base_logits, base_features = (np.asarray(t) for t in model(x, training=False))
    np.testing.assert_allclose(logits, base_logits, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(features, base_features, rtol=1e-5, atol=1e-6)
    for tap, size in zip(taps, stages.values(), strict=True):
        assert tap.shape[1:3] == (size, size)
    if not name.startswith("wrn"):  # the last stage's output is the pooled feature map
        np.testing.assert_array_equal(taps[-1], features)


def test_resnet_stage_tap_is_the_last_block_output():
    model = get_model("resnet14", 5, (8, 8, 3))  # two blocks per stage
    stage1 = model.get_layer("stage1")
    assert stage1.input is model.get_layer("stage1_block2_relu2").output
    assert model.get_layer("stage2_block1_conv1_pad").input is stage1.output
    assert model.get_layer("features").input is model.get_layer("stage3").output


def test_wide_resnet_stage_taps_are_group_sums_before_the_final_bn_relu():
    model = get_model("wrn_10_1", 5, (8, 8, 3))
    assert model.get_layer("stage3").input is model.get_layer("group3_block1_add").output
    assert model.get_layer("final_bn").input is model.get_layer("stage3").output
    assert model.get_layer("stage1").input is model.get_layer("group1_block1_add").output


def test_mobilenet_stage_taps_are_the_last_block_at_each_resolution():
    model = get_model("mobilenet", 5, (8, 8, 3), width_multiplier=0.0625)
    for stage, block in (("stage1", 3), ("stage2", 5), ("stage3", 13)):
        assert (
            model.get_layer(stage).input is model.get_layer(f"block{block}_pointwise_relu").output
        )


def test_with_taps_on_any_layer_of_a_functional_model():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv_a")(inputs)
    x = keras.layers.ReLU(name="relu_a")(x)
    x = keras.layers.Conv2D(6, 3, strides=2, padding="same", name="conv_b")(x)
    pooled = keras.layers.GlobalAveragePooling2D()(x)
    base = keras.Model(inputs, keras.layers.Dense(3, name="head")(pooled), name="plain")
    model = with_taps(with_feature_output(base, "conv_b"), ["relu_a", "conv_a"], name="tapped")
    assert model.name == "tapped"
    assert model.output_names == ["head", "conv_b", "relu_a", "conv_a"]
    _, _, relu_a, conv_a = model(images((8, 8, 3)))
    np.testing.assert_allclose(np.asarray(relu_a), np.maximum(np.asarray(conv_a), 0.0))


def test_with_taps_errors_name_the_problem():
    model = get_model("resnet8", 5, (8, 8, 3))
    with pytest.raises(ValueError, match=r"no layer named \['stage9'\].*\['stage1', 'stage2'"):
        with_taps(model, ["stage1", "stage9"])
    with pytest.raises(ValueError, match="repeat"):
        with_taps(model, ["stage1", "stage1"])
    with pytest.raises(ValueError, match="already are the first two outputs"):
        with_taps(model, ["features"])
    with pytest.raises(TypeError, match="sequence of strings"):
        with_taps(model, "stage1")
    single = keras.Model(model.input, model.outputs[0])
    with pytest.raises(ValueError, match="with_feature_output first"):
        with_taps(single, ["stage1"])
    with pytest.raises(TypeError, match="functional keras.Model"):
        with_taps(object(), ["stage1"])


def test_tapped_model_round_trips_through_keras_files(tmp_path):
    model = with_taps(get_model("resnet8", 5, (8, 8, 3)), ["stage1", "stage2"])
    model.save(tmp_path / "tapped.keras")
    restored = keras.saving.load_model(tmp_path / "tapped.keras")
    assert restored.output_names == model.output_names
    x = images((8, 8, 3))
    for a, b in zip(model(x), restored(x), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)
