"""Your own classifier on your own images in one command: configs/image_folder.py through
scripts/train.py distils it, exports every format and checks each against the Keras student."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from configs import image_folder
from iekd_keras.experiment.config_checks import ConfigError, validate_config
from iekd_keras.experiment.export import FORMATS

ROOT = Path(__file__).parents[2]
SHAPES = ("circle", "cross", "square")  # class 0, 1, 2: the folders' alphabetical order
IMAGE_SIZE = 16
PER_CLASS = 20
ONNX_MODULES = ("tf2onnx", "onnx", "onnxruntime")


def draw(shape, rng):
    """One 16x16 RGB image: a ring, a cross or a filled square at a random place and size, in
    its class's hue (so that a few epochs learn it), on a dark noisy background."""
    rows, columns = np.mgrid[:IMAGE_SIZE, :IMAGE_SIZE]
    radius = rng.integers(4, 7)
    centre_row, centre_column = rng.integers(radius, IMAGE_SIZE - radius, size=2)
    dy, dx = rows - centre_row, columns - centre_column
    if shape == "circle":
        mask = np.abs(np.hypot(dy, dx) - radius + 0.5) < 1.0
    elif shape == "cross":
        mask = ((np.abs(dy) <= 1) | (np.abs(dx) <= 1)) & (np.maximum(abs(dy), abs(dx)) < radius)
    else:
        mask = np.maximum(np.abs(dy), np.abs(dx)) < radius
    colour = rng.uniform(40.0, 90.0, 3)
    colour[SHAPES.index(shape)] = rng.uniform(180.0, 255.0)
    pixels = rng.normal(30.0, 10.0, (IMAGE_SIZE, IMAGE_SIZE, 3))
    pixels[mask] = colour
    return np.clip(pixels, 0, 255).astype("uint8")


@pytest.fixture(scope="module")
def user_files(tmp_path_factory):
    """An image folder of three shapes and a plain Keras classifier trained on it, saved as a
    user would: `Rescaling` inside, softmax out, raw 0-255 images in."""
    root = tmp_path_factory.mktemp("mine")
    rng = np.random.default_rng(0)
    for shape in SHAPES:
        (root / "images" / shape).mkdir(parents=True)
        for index in range(PER_CLASS):
            Image.fromarray(draw(shape, rng)).save(root / "images" / shape / f"{index:02d}.png")
    keras.utils.set_random_seed(0)
    images = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3))
    x = keras.layers.Rescaling(1 / 255, name="rescale")(images)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv_1")(x)
    x = keras.layers.MaxPooling2D(name="pool_1")(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv_2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool_2")(x)
    scores = keras.layers.Dense(len(SHAPES), activation="softmax", name="scores")(x)
    classifier = keras.Model(images, scores, name="shapes")
    classifier.compile(
        keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy", metrics=["acc"]
    )
    dataset = keras.utils.image_dataset_from_directory(
        root / "images", image_size=(IMAGE_SIZE, IMAGE_SIZE), batch_size=20, seed=0
    )
    history = classifier.fit(dataset, epochs=40, verbose=0, shuffle=False)  # shuffled above
    assert history.history["acc"][-1] >= 0.9  # a teacher worth distilling
    classifier.save(root / "shapes.keras")
    return root


def train(workdir, *overrides, config="configs/image_folder.py:smoke"):
    return subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "train.py"),
            f"--config={config}",
            f"--workdir={workdir}",
            *overrides,
        ],
        cwd=ROOT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_BACKEND": "tensorflow"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def error_lines(run):
    """The script's own error lines (TensorFlow's native start-up logs aside)."""
    return [line for line in run.stderr.splitlines() if line.startswith("error:")]


def user_overrides(root, *more):
    return (
        f"--config.data.directory={root / 'images'}",
        f"--config.data.image_size={IMAGE_SIZE}",
        f"--config.teacher.checkpoint={root / 'shapes.keras'}",
        "--config.batch_size=16",
        *more,
    )


def test_one_command_distils_the_classifier_and_exports_every_format_verified(user_files):
    workdir = user_files / "run"
    formats = tuple(
        name
        for name in image_folder.get_config().export_formats
        if name != "onnx" or all(importlib.util.find_spec(module) for module in ONNX_MODULES)
    )
    # A ResNet-8 for 6 epochs (LR x0.1 after 4) learns the shapes, which the int8 check needs:
    # its test accuracy within 1 point of the Keras model's, on 12 test images.
    run = train(
        workdir,
        *user_overrides(
            user_files,
            f"--config.export_formats={formats!r}",
            "--config.student.model=resnet8",
            "--config.student.epochs=6",
            "--config.teacher.epochs=6",
            "--config.optimizer.milestones=(4,)",
            "--config.baseline=false",
        ),
    )
    assert run.returncode == 0, run.stderr[-4000:]
    # The feature map is found at the classifier's global pooling, and said so.
    assert "gives its features from layer 'conv_2' (8, 8, 32)" in run.stdout
    results = json.loads((workdir / "results.json").read_text())
    stages = results["stages"]
    assert set(stages) == {"teacher", "autoencoder", "student"}
    # The classifier is the teacher, its class order the folders': it knows the test images.
    assert stages["teacher"]["loaded_from"] == str(user_files / "shapes.keras")
    assert stages["teacher"]["distilled_from"]["test_accuracy"] >= 0.9
    student = stages["student"]
    assert (student["model"], student["epochs"], student["steps_per_epoch"]) == ("resnet8", 6, 3)
    assert student["final_logs"]["kd_loss"] > 0 and student["final_logs"]["inheritance_loss"] > 0
    assert student["last_test_accuracy"] >= 0.5  # chance is 1/3
    report = json.loads((workdir / "export" / "report.json").read_text())
    rows = {row["format"]: row for row in report["rows"]}
    assert set(rows) == {"keras", *formats}
    assert report["split"] == "test"
    for name in formats:
        assert rows[name]["verified"] is True, rows[name]
        assert (workdir / "export" / rows[name]["file"]).exists()
        if name == "litert_int8":
            assert rows[name]["top1_agreement"] >= 0.9
        else:
            assert rows[name]["max_abs_prob_diff"] <= 1e-4
            assert rows[name]["top1_agreement"] == 1.0


def test_a_wrong_feature_layer_is_one_sentence_naming_the_layers(user_files, tmp_path):
    run = train(
        tmp_path / "run", *user_overrides(user_files, "--config.teacher.feature_layer=conv2")
    )
    assert run.returncode == 2, run.stderr[-4000:]
    assert "Traceback" not in run.stderr
    (line,) = error_lines(run)
    assert line.startswith(f"error: config.teacher.checkpoint='{user_files / 'shapes.keras'}'")
    assert "config.teacher.feature_layer='conv2' is not a layer of the teacher 'shapes'." in line
    assert "Did you mean 'conv_2'?" in line
    assert "Its layers with a 4-D output are: ['rescale', 'conv_1', 'pool_1', 'conv_2']" in line
    assert not (tmp_path / "run" / "teacher").exists()


def test_the_placeholders_are_refused_in_one_sentence_each(user_files, tmp_path):
    from iekd_keras.experiment.train import train_and_evaluate

    config = image_folder.get_config("smoke")
    with pytest.raises(ValueError) as error:
        train_and_evaluate(config, tmp_path / "run")
    assert str(error.value) == (
        "The image folder '<set --config.data.directory>' does not exist; expected a folder "
        "holding one sub-folder of images per class (or train/ and test/ folders that do)."
    )
    config.data.directory = str(user_files / "images")
    config.data.image_size = IMAGE_SIZE
    with pytest.raises(FileNotFoundError) as error:
        train_and_evaluate(config, tmp_path / "run")
    assert str(error.value) == (
        "The teacher checkpoint '<set --config.teacher.checkpoint>' does not exist."
    )
    assert not (tmp_path / "run").exists()


def test_the_config_is_the_documented_recipe():
    config = validate_config(image_folder.get_config())
    assert (config.data.name, config.data.directory) == ("image_folder", image_folder.IMAGES)
    assert config.teacher.checkpoint == image_folder.TEACHER
    assert (config.teacher.feature_layer, config.teacher.preprocessing) == ("", "raw")
    assert config.student.model == "resnet20" and config.distiller.resize_teacher_factor
    assert set(config.export_formats) == set(FORMATS)
    assert [term["type"] for term in config.distillation_losses] == ["kd"]
    assert (config.distiller.lambda_inh, config.distiller.lambda_exp) == (50.0, 50.0)
    assert image_folder.get_config("kd").distiller.lambda_inh == 0.0
    smoke = image_folder.get_config("smoke")
    assert (smoke.student.epochs, smoke.autoencoder.epochs) == (2, 1)
    config.data.directory = None
    with pytest.raises(ConfigError, match="config.data.directory must be set"):
        validate_config(config)
