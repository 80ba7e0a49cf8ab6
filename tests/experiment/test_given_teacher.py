"""A plain Keras classifier as the teacher: its own preprocessing, its probabilities as logits,
its feature map found or named, and every mistake told with the layers to choose from."""

import keras
import numpy as np
import pytest
from ml_collections import ConfigDict

from iekd_keras.experiment.config_checks import ConfigError, validate_config
from iekd_keras.experiment.given_teacher import (
    TeacherPreprocessing,
    as_two_output_teacher,
    gives_probabilities,
    load_teacher,
)
from tests.distillers.tiny_models import tiny_backbone

SHAPE = (8, 8, 1)
MEAN, STD = (0.3,), (0.2,)
DATA = ConfigDict({"input_shape": SHAPE, "mean": MEAN, "std": STD, "name": "digits"})
SPATIAL = ["conv1", "relu1", "conv2", "block_out"]


def classifier(activation="softmax"):
    inputs = keras.Input(SHAPE)
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv1")(inputs)
    x = keras.layers.ReLU(name="relu1")(x)
    x = keras.layers.Conv2D(6, 3, strides=2, padding="same", name="conv2")(x)
    x = keras.layers.ReLU(name="block_out")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(10, activation=activation, name="classes")(x)
    return keras.Model(inputs, outputs, name="mine")


def teacher_config(feature_layer="", preprocessing="dataset"):
    return ConfigDict({"feature_layer": feature_layer, "preprocessing": preprocessing})


def normalised_images():
    return np.random.default_rng(0).normal(size=(3, *SHAPE)).astype("float32")


def test_a_saved_softmax_classifier_teaches_with_log_probabilities(tmp_path, capsys):
    model = classifier("softmax")
    model.save(tmp_path / "mine.keras")
    teacher = load_teacher(tmp_path / "mine.keras", teacher_config(preprocessing="unit"), DATA)
    assert "from layer 'block_out' (4, 4, 6)" in capsys.readouterr().out
    images = normalised_images()
    logits, features = teacher(images)
    unit = (images * STD[0] + MEAN[0]) * 255.0 / 255.0
    probabilities = keras.ops.convert_to_numpy(model(unit))
    np.testing.assert_allclose(keras.ops.softmax(logits), probabilities, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(logits, np.log(probabilities), rtol=1e-5, atol=1e-5)
    tapped = keras.Model(model.inputs, model.get_layer("block_out").output)
    np.testing.assert_allclose(features, tapped(unit), rtol=1e-5, atol=1e-6)
    # Serialisable, loadable in safe mode, same numbers.
    teacher.save(tmp_path / "teacher.keras")
    reloaded = keras.saving.load_model(tmp_path / "teacher.keras", safe_mode=True)
    np.testing.assert_allclose(reloaded(images)[0], logits, rtol=1e-6, atol=1e-6)


@pytest.mark.backend_agnostic
def test_a_logits_classifier_and_a_named_feature_layer():
    model = classifier(activation=None)
    assert not gives_probabilities(model) and gives_probabilities(classifier())
    teacher = as_two_output_teacher(model, DATA, "relu1", "symmetric")
    images = normalised_images()
    logits, features = teacher(images)
    symmetric = (images * STD[0] + MEAN[0]) * 255.0 / 127.5 - 1.0
    np.testing.assert_allclose(logits, model(symmetric), rtol=1e-5, atol=1e-6)
    assert tuple(features.shape) == (3, 8, 8, 4)


@pytest.mark.backend_agnostic
def test_the_preprocessings_give_the_pixels_the_classifier_expects():
    images = normalised_images()
    pixels = (images * STD[0] + MEAN[0]) * 255.0

    def run(name):
        return keras.ops.convert_to_numpy(TeacherPreprocessing(MEAN, STD, name)(images))

    np.testing.assert_allclose(run("raw"), pixels, rtol=1e-6)
    np.testing.assert_allclose(run("dataset"), images)
    # keras.applications' "tf" mode families scale to [-1, 1], as "symmetric" does.
    np.testing.assert_allclose(run("mobilenet_v2"), run("symmetric"), atol=1e-6)
    with pytest.raises(ValueError, match=r"^preprocessing='imagenet' is not a teacher prepro"):
        TeacherPreprocessing(MEAN, STD, "imagenet")


@pytest.mark.backend_agnostic
def test_a_feature_layer_that_is_absent_or_not_4d_names_the_choices():
    with pytest.raises(
        ValueError,
        match=r"^config.teacher.feature_layer='block' is not a layer of the teacher 'mine'\. "
        r"Did you mean 'block_out'\? Its layers with a 4-D output are: "
        r"\['conv1', 'relu1', 'conv2', 'block_out'\]\.$",
    ):
        as_two_output_teacher(classifier(), DATA, "block")
    with pytest.raises(
        ValueError,
        match=r"^config.teacher.feature_layer='pool' has output shape \(None, 6\); expected a "
        r"4-D feature map .* are: \['conv1', 'relu1', 'conv2', 'block_out'\]\.$",
    ):
        as_two_output_teacher(classifier(), DATA, "pool")
    other = ConfigDict({**DATA.to_dict(), "input_shape": (16, 16, 1)})
    with pytest.raises(ValueError, match=r"takes images of shape \(8, 8, 1\) but the dataset"):
        as_two_output_teacher(classifier(), other)


def test_a_two_output_checkpoint_is_taken_as_saved(tmp_path):
    model = tiny_backbone(num_classes=10, input_shape=SHAPE)
    model.save(tmp_path / "two.keras")
    loaded = load_teacher(tmp_path / "two.keras", teacher_config(), DATA)
    assert [w.shape for w in loaded.weights] == [w.shape for w in model.weights]
    with pytest.raises(ValueError, match=r"apply to a plain one-output classifier"):
        load_teacher(tmp_path / "two.keras", teacher_config(preprocessing="unit"), DATA)
    with pytest.raises(FileNotFoundError, match=r"absent.keras' does not exist"):
        load_teacher(tmp_path / "absent.keras", teacher_config(), DATA)


@pytest.mark.backend_agnostic
def test_the_config_refuses_an_unknown_preprocessing():
    with pytest.raises(
        ConfigError, match=r"^config.teacher.preprocessing='imagenet' is out of range: expected"
    ):
        validate_config({"teacher": {"preprocessing": "imagenet"}})


def test_a_run_checks_and_loads_a_plain_classifier_teacher(tmp_path):
    """config.teacher.checkpoint may name a plain classifier: preflight checks the run with it
    adapted, the teacher stage loads it the same way, and a wrong feature_layer is refused."""
    from configs import quickstart
    from iekd_keras.experiment import stages
    from iekd_keras.experiment.preflight import check_run

    classifier("softmax").save(tmp_path / "mine.keras")
    config = quickstart.get_config("smoke")
    config.data.image_size = 8
    config.student.model = "resnet8"
    config.autoencoder.factor_channels = 4
    config.teacher.checkpoint = str(tmp_path / "mine.keras")
    config.teacher.preprocessing = "unit"
    data = ConfigDict(
        {"name": "digits", "input_shape": SHAPE, "num_classes": 10, "num_train_examples": 64}
    )
    data.update({"mean": MEAN, "std": STD})
    with pytest.raises(ConfigError, match="gives 2x2 features but config.teacher.checkpoint"):
        check_run(config, data)  # the classifier's 4x4x6 'block_out' vs ResNet-8's 2x2
    config.distiller.resize_teacher_factor = True
    check_run(config, data)
    teacher = stages.load_teacher(config.teacher.checkpoint, config.teacher, data)
    assert [output.shape[1:] for output in teacher.outputs] == [(10,), (4, 4, 6)]
    config.teacher.feature_layer = "pool"
    with pytest.raises(ConfigError, match="'pool'.*conv1"):
        check_run(config, data)
