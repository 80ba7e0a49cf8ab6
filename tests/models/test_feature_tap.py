import keras
import numpy as np
import pytest

from iekd_keras.models import with_feature_output


def images(batch=2, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, 32, 32, 3)).astype("float32")


def tiny_classifier():
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", name="conv_a")(inputs)
    x = keras.layers.ReLU(name="relu_a")(x)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="conv_b")(x)
    x = keras.layers.ReLU(name="last_relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(5, name="head")(x)
    return keras.Model(inputs, outputs, name="tiny")


def test_tiny_model_gets_consistent_logits_and_features():
    base = tiny_classifier()
    model = with_feature_output(base, "last_relu")
    assert model.name == "tiny_with_features"
    x = images()
    logits, features = (np.asarray(t) for t in model(x))
    assert features.shape == (2, 8, 8, 8)
    np.testing.assert_allclose(logits, np.asarray(base(x)), rtol=1e-5, atol=1e-6)
    kernel, bias = base.get_layer("head").get_weights()
    np.testing.assert_allclose(
        logits, features.mean(axis=(1, 2)) @ kernel + bias, rtol=1e-4, atol=1e-5
    )


def test_layers_and_weights_are_shared_not_copied():
    base = tiny_classifier()
    model = with_feature_output(base, "last_relu", name="tapped")
    assert model.name == "tapped"
    assert model.get_layer("conv_b") is base.get_layer("conv_b")
    assert len(model.trainable_weights) == len(base.trainable_weights)
    base.get_layer("head").bias.assign(np.full((5,), 3.0, "float32"))
    np.testing.assert_allclose(np.asarray(model.get_layer("head").bias), 3.0)


def test_keras_applications_model_without_download():
    base = keras.applications.MobileNetV3Small(
        input_shape=(32, 32, 3),
        weights=None,
        include_top=True,
        classifier_activation=None,
        classes=10,
    )
    # The map read by the head's global average pooling is the layer just before it.
    pool_index = next(
        index
        for index, layer in enumerate(base.layers)
        if isinstance(layer, keras.layers.GlobalAveragePooling2D)
        and "squeeze_excite" not in layer.name
    )
    feature_layer = base.layers[pool_index - 1].name
    model = with_feature_output(base, feature_layer)
    x = images()
    logits, features = model(x, training=False)
    assert tuple(logits.shape) == (2, 10)
    assert len(features.shape) == 4 and features.shape[0] == 2
    np.testing.assert_allclose(
        np.asarray(logits), np.asarray(base(x, training=False)), rtol=1e-4, atol=1e-5
    )
    reference = keras.Model(base.input, base.get_layer(feature_layer).output)
    np.testing.assert_allclose(
        np.asarray(features), np.asarray(reference(x, training=False)), rtol=1e-4, atol=1e-5
    )


def test_unknown_layer_lists_close_names_and_late_feature_maps():
    with pytest.raises(ValueError) as info:
        with_feature_output(tiny_classifier(), "last_rel")
    message = str(info.value)
    assert "'last_rel'" in message and "'tiny'" in message
    assert "Closest names: ['last_relu'" in message
    assert "'conv_b'" in message  # among the last layers with a 4-D output
    assert "'gap'" not in message.split("4-D")[-1]


def test_subclassed_model_is_rejected_with_explanation():
    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__(name="subclassed")
            self.dense = keras.layers.Dense(3)

        def call(self, inputs):
            return self.dense(inputs)

    model = Subclassed()
    model(np.zeros((1, 4), "float32"))
    with pytest.raises(TypeError, match=r"functional keras\.Model.*'subclassed'.*Subclassed"):
        with_feature_output(model, "dense")


def test_non_model_is_rejected_with_type_named():
    with pytest.raises(TypeError, match=r"functional keras\.Model.*got an object of type .*dict"):
        with_feature_output({"not": "a model"}, "features")


def test_multi_output_model_is_rejected():
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(3, name="hidden")(inputs)
    model = keras.Model(inputs, [keras.layers.Dense(2)(hidden), hidden], name="two_heads")
    with pytest.raises(ValueError, match=r"single-output.*'two_heads' has 2 outputs"):
        with_feature_output(model, "hidden")
