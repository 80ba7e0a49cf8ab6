"""The exported student: raw images in, probabilities out, and nothing but the student inside."""

import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from iekd_keras import Distiller
from iekd_keras.experiment.export import export_student
from iekd_keras.layers import FactorAutoencoder
from tests.distillers.tiny_models import tiny_backbone

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def test_saved_model_matches_the_keras_student(tmp_path):
    teacher = tiny_backbone(channels=8, name="teacher")
    autoencoder = FactorAutoencoder(4)
    autoencoder.build(teacher.outputs[1].shape)
    distiller = Distiller(teacher, tiny_backbone(channels=6, name="student"), autoencoder.encoder)
    paths = export_student(distiller.student, tmp_path / "export", MEAN, STD)

    raw = np.random.default_rng(0).uniform(0, 255, (5, 8, 8, 3)).astype("float32")
    normalised = (raw / 255.0 - np.array(MEAN)) / np.array(STD)
    expected = keras.ops.softmax(distiller.student(normalised.astype("float32"))[0]).numpy()

    loaded = tf.saved_model.load(str(paths["saved_model"]))
    served = loaded.signatures["serve"](images=tf.constant(raw))
    (probabilities,) = served.values()
    np.testing.assert_allclose(probabilities.numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(probabilities.numpy().sum(axis=1), 1.0, atol=1e-5)

    names = [v.name for v in loaded.variables]
    assert names and not any("teacher" in n or "encoder" in n for n in names), names
    student_size = sum(int(np.prod(v.shape)) for v in distiller.student.weights)
    assert sum(int(np.prod(v.shape)) for v in loaded.variables) <= student_size + 2 * 3 + 1

    reloaded = keras.saving.load_model(paths["keras"])
    np.testing.assert_allclose(reloaded(normalised)[0], distiller.student(normalised)[0], atol=1e-6)


def test_saved_model_cli_lists_the_signature(tmp_path):
    export_student(tiny_backbone(), tmp_path, MEAN, STD)
    cli = Path(sys.executable).parent / "saved_model_cli"
    output = subprocess.run(
        [str(cli), "show", "--dir", str(tmp_path / "saved_model"), "--all"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "signature_def['serve']" in output
    assert "images" in output and "(-1, 8, 8, 3)" in output
