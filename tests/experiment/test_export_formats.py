"""Every export format of a trained student, checked in its own runtime: the float files give
the Keras model's probabilities, the int8 file its accuracy, and another model's file fails."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import keras
import numpy as np
import pytest

from iekd_keras import StandaloneTrainer
from iekd_keras.data import load_digits
from iekd_keras.experiment.config_checks import ConfigError, validate_config
from iekd_keras.experiment.export import (
    ARTIFACTS,
    FORMATS,
    check_formats,
    check_requirements,
    export_and_verify,
    export_student,
    run_config,
    served_student,
    serving_model,
)
from iekd_keras.experiment.export_verification import (
    ExportMismatch,
    calibration_images,
    check_rows,
    format_table,
    raw_batches,
    verify_exports,
)
from iekd_keras.experiment.records import prepare_workdir
from iekd_keras.models import get_model

ROOT = Path(__file__).parents[2]
ONNX_MODULES = ("tf2onnx", "onnx", "onnxruntime")
# ONNX is an optional extra: without it the other formats are still tested.
TESTED = tuple(
    name
    for name in FORMATS
    if name != "onnx" or all(importlib.util.find_spec(module) for module in ONNX_MODULES)
)
FLOAT = tuple(name for name in TESTED if name != "litert_int8")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A ResNet-8 trained for 3 epochs on 8x8 digits, exported to every format and verified;
    and an untrained ResNet-8 exported to every format, unverified."""
    keras.utils.set_random_seed(0)
    data = load_digits(image_size=8)
    student = get_model("resnet8", num_classes=10, input_shape=data.input_shape)
    trainer = StandaloneTrainer(student)
    trainer.compile(optimizer=keras.optimizers.Adam(3e-3))
    steps = data.steps_per_epoch(64)
    trainer.fit(
        data.train_dataset(64, seed=0, epochs=3),
        epochs=3,
        steps_per_epoch=steps,
        shuffle=False,
        verbose=0,
    )
    root = tmp_path_factory.mktemp("exports")
    paths, rows = export_and_verify(student, root / "student", data, TESTED)
    keras.utils.set_random_seed(1)
    other = get_model("resnet8", num_classes=10, input_shape=data.input_shape)
    calibration = calibration_images(data, "train", 32)
    other_paths = export_student(other, root / "other", data.mean, data.std, TESTED, calibration)
    return SimpleNamespace(data=data, student=student, paths=paths, rows=rows, other=other_paths)


def test_every_format_is_written_and_matches_the_keras_student(exported):
    data, rows = exported.data, {row["format"]: row for row in exported.rows}
    assert list(rows) == ["keras", *TESTED]
    assert {name: Path(exported.paths[name]).name for name in TESTED} == {
        name: ARTIFACTS[name] for name in TESTED
    }
    # The reference row is the student itself, normalisation included, on raw test images.
    logits = exported.student(data.normalize(data.test_images), training=False)[0]
    accuracy = float(np.mean(np.argmax(logits, axis=1) == data.test_labels))
    assert rows["keras"]["test_accuracy"] == pytest.approx(accuracy, abs=1e-12)
    assert accuracy > 0.8  # trained: the int8 check below means something
    for name in FLOAT:
        assert rows[name]["verified"] is True and rows[name]["problem"] is None, rows[name]
        assert rows[name]["max_abs_prob_diff"] <= 1e-4, rows[name]
        assert rows[name]["top1_agreement"] == 1.0
        assert rows[name]["test_accuracy"] == rows["keras"]["test_accuracy"]
    int8 = rows["litert_int8"]
    assert int8["verified"] is True, int8
    assert abs(int8["test_accuracy"] - accuracy) <= 0.01
    assert int8["size_bytes"] < 0.4 * rows["litert"]["size_bytes"]  # int8 weights: ~1/4
    assert all(row["median_latency_ms"] > 0 for row in rows.values())
    report = json.loads((Path(exported.paths["keras"]).parent / "report.json").read_text())
    assert report == {"split": "test", "rows": exported.rows}
    table = format_table(exported.rows).splitlines()
    assert len(table) == 2 + len(rows) and all(line.endswith("| yes |") for line in table[3:])


def test_the_int8_file_computes_in_int8_between_float_input_and_output(exported):
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=str(exported.paths["litert_int8"]))
    interpreter.allocate_tensors()
    (source,), (result,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert source["dtype"] == np.float32 and result["dtype"] == np.float32
    tensors = interpreter.get_tensor_details()
    floats = {t["index"] for t in tensors if t["dtype"] == np.float32}
    assert floats == {source["index"], result["index"]}
    assert sum(t["dtype"] == np.int8 for t in tensors) > 20  # weights and activations


def test_each_verification_fails_on_another_models_export(exported):
    data = exported.data
    swapped = {**exported.paths, **{name: exported.other[name] for name in TESTED}}
    rows = verify_exports(
        serving_model(exported.student, data.mean, data.std),
        swapped,
        lambda: raw_batches(data, "test", 256),
    )
    rows = {row["format"]: row for row in rows}
    for name in FLOAT:
        assert rows[name]["verified"] is False
        assert rows[name]["problem"].startswith("its probabilities differ from the Keras model's")
    assert rows["litert_int8"]["verified"] is False
    assert "points from the Keras model's" in rows["litert_int8"]["problem"]
    with pytest.raises(
        ExportMismatch,
        match=r"^The export fails its verification on the test split: saved_model "
        r"\(saved_model\): its probabilities differ from the Keras model's by up to [0-9.e-]+; "
        r"expected at most 0.0001; litert \(student.tflite\): ",
    ):
        check_rows(list(rows.values()))


@pytest.mark.backend_agnostic
def test_a_bad_format_is_refused_in_one_sentence():
    assert check_formats(["onnx", "saved_model", "onnx"]) == ("onnx", "saved_model")
    with pytest.raises(
        ValueError,
        match=r"^--formats=saved_model,tflite names 'tflite', which is not an export format; "
        r"expected one or more of saved_model, litert, litert_int8, onnx\.$",
    ):
        check_formats(["saved_model", "tflite"], source="--formats=saved_model,tflite")
    with pytest.raises(ValueError, match=r"^formats names no export format; expected one or more"):
        check_formats(())


def test_the_script_refuses_a_bad_formats_value(tmp_path):
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    environment.pop("IEKD_DEBUG", None)
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "export.py"),
            "--config=configs/quickstart.py",
            f"--checkpoint={tmp_path / 'absent.keras'}",
            f"--output={tmp_path}",
            "--formats=saved_model,tflite",
        ],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        "error: --formats=saved_model,tflite names 'tflite', which is not an export format; "
        "expected one or more of saved_model, litert, litert_int8, onnx."
    ]


def test_a_missing_runtime_names_the_extra(monkeypatch):
    real_find_spec = importlib.util.find_spec

    def without_onnx(name, *args):
        return None if name in ONNX_MODULES else real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", without_onnx)
    with pytest.raises(
        ModuleNotFoundError,
        match=r"^The onnx export needs the optional packages tf2onnx, onnx, onnxruntime, which "
        r"are not installed; install them: pip install 'iekd_keras\[export\]'\.$",
    ):
        check_requirements(("saved_model", "onnx"))
    # A run asking for ONNX is refused before it trains; one that does not export is not.
    with pytest.raises(ConfigError, match=r"^The onnx export needs the optional packages"):
        validate_config({"export_formats": ("onnx",)})
    small = {"teacher": {"model": "resnet8"}, "student": {"model": "resnet8"}}
    validate_config({**small, "export_formats": ("onnx",), "export": False})


def test_a_workdir_gives_its_config_and_served_student(exported, tmp_path):
    config = run_config_for(tmp_path, exported)
    student = served_student(tmp_path, run_config(tmp_path), exported.data)
    assert run_config(tmp_path).to_dict() == config.to_dict()
    for loaded, saved in zip(student.weights, exported.student.weights, strict=True):
        np.testing.assert_array_equal(loaded.numpy(), saved.numpy())
    (tmp_path / "student" / "summary.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"has no finished student stage"):
        served_student(tmp_path, config, exported.data)
    with pytest.raises(FileNotFoundError, match=r"holds no run"):
        run_config(tmp_path / "student")


def run_config_for(workdir, exported):
    """A finished run's workdir as train_and_evaluate leaves it, holding `exported.student`."""
    from configs import quickstart

    config = quickstart.get_config()
    config.data.image_size, config.student.model = 8, "resnet8"
    config.export_formats = ("saved_model", "litert")
    prepare_workdir(workdir, config)
    (workdir / "student").mkdir()
    exported.student.save(workdir / "student" / "last.keras")
    (workdir / "student" / "summary.json").write_text(json.dumps({"last_test_accuracy": 0.9}))
    return config
