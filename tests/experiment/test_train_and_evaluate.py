"""The staged run end to end on real digits: records, checkpoints, skipping finished stages."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import ml_collections
import numpy as np
import pytest

from configs import quickstart
from iekd_keras.data import load_digits
from iekd_keras.experiment.train import train_and_evaluate


def tiny_config():
    config = quickstart.get_config("smoke")
    config.data.image_size = 8
    config.teacher.model = config.student.model = "resnet8"
    config.teacher.epochs = 1
    config.student.epochs = 4
    config.autoencoder.factor_channels = 8
    config.optimizer.milestones = ()
    config.batch_size = 128
    config.verbose = 0
    return config


def without(config, *keys):
    """`config` as a user's own config could write it: a plain ConfigDict without `keys`."""
    tree = config.to_dict()
    for key in keys:
        del tree[key]
    return ml_collections.ConfigDict(tree)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("run")
    # Left out, `deterministic` and `export` take base_config()'s True: the tests below check
    # the recorded determinism and the export.
    config = without(tiny_config(), "deterministic", "export")
    return config, workdir, train_and_evaluate(config, workdir)


def test_results_record_every_stage(run):
    config, workdir, results = run
    on_disk = json.loads((workdir / "results.json").read_text())
    assert on_disk["stages"].keys() == {"teacher", "autoencoder", "student", "baseline"}
    assert on_disk["seed"] == 0 and on_disk["global_batch_size"] == 128
    assert on_disk["device_count"] == 1 and on_disk["dataset"] == "digits"
    assert on_disk["versions"]["keras"] == keras.__version__
    student = on_disk["stages"]["student"]
    assert 0.0 <= student["last_test_accuracy"] <= student["best_test_accuracy"] <= 1.0
    assert student["trainable_parameters"] == 75_002
    logs = student["final_logs"]
    assert logs["exploration_loss"] < 0 < logs["inheritance_loss"]
    assert logs["images_per_second"] > 0 and logs["learning_rate"] == pytest.approx(0.1)


def test_checkpoints_hold_the_bare_models(run):
    _, workdir, _ = run
    student = keras.saving.load_model(workdir / "student" / "last.keras")
    assert len(student.outputs) == 2
    assert not any("teacher" in w.path or "encoder" in w.path for w in student.weights)
    assert (workdir / "student" / "best.keras").exists()
    assert (workdir / "export" / "saved_model" / "saved_model.pb").exists()
    assert (workdir / "tensorboard" / "student").is_dir()
    header = (workdir / "student" / "log.csv").read_text().splitlines()[0].split(",")
    assert {
        "inheritance_loss",
        "exploration_loss",
        "images_per_second",
        "val_accuracy",
        "cka_inheritance",
        "cka_exploration",
    } <= set(header)


def test_rerun_skips_finished_stages(run):
    config, workdir, first = run
    logs_before = (workdir / "student" / "log.csv").read_text()
    again = train_and_evaluate(config, workdir, data=load_digits(image_size=8))
    assert (workdir / "student" / "log.csv").read_text() == logs_before
    for stage in ("teacher", "student", "baseline"):
        assert again["stages"][stage]["best_test_accuracy"] == pytest.approx(
            first["stages"][stage]["best_test_accuracy"]
        )
    assert np.isfinite(again["wall_time_s"])


def test_a_failed_export_verification_is_told_after_the_run_is_recorded(run, tmp_path, monkeypatch):
    import shutil

    from iekd_keras.experiment import export_verification

    config, workdir, _ = run
    shutil.copytree(workdir, tmp_path / "run")
    (tmp_path / "run" / "results.json").unlink()
    verify = export_verification.verify_exports

    def failing(*args, **kwargs):
        rows = verify(*args, **kwargs)
        rows[-1].update(verified=False, problem="a simulated mismatch")
        return rows

    monkeypatch.setattr(export_verification, "verify_exports", failing)
    with pytest.raises(export_verification.ExportMismatch, match="a simulated mismatch"):
        train_and_evaluate(config, tmp_path / "run", data=load_digits(image_size=8))
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["export"]["verification"][-1]["verified"] is False
    assert set(results["stages"]) >= {"teacher", "student", "baseline"}


def test_teacher_loaded_from_a_checkpoint(run, tmp_path):
    config, workdir, first = run
    config = config.copy_and_resolve_references()
    config.teacher.checkpoint = str(workdir / "teacher" / "last.keras")
    config.baseline = config.export = False
    results = train_and_evaluate(config, tmp_path, data=load_digits(image_size=8))
    teacher = results["stages"]["teacher"]
    assert teacher["loaded_from"] == config.teacher.checkpoint
    assert teacher["best_test_accuracy"] == pytest.approx(
        first["stages"]["teacher"]["last_test_accuracy"], abs=1e-6
    )
    assert not (tmp_path / "teacher").exists()


def test_missing_teacher_checkpoint_is_named(tmp_path):
    config = tiny_config()
    config.teacher.checkpoint = str(tmp_path / "missing.keras")
    with pytest.raises(FileNotFoundError, match="teacher checkpoint .*missing.keras' does not"):
        train_and_evaluate(config, tmp_path / "run", data=load_digits(image_size=8))


TIMING_KEYS = {"wall_time_s", "images_per_second"}


def metric_fields(results):
    """Every recorded number except timings."""
    fields = {}
    for stage, summary in results["stages"].items():
        for key, value in summary.items():
            if key == "final_logs":
                fields.update({f"{stage}.{k}": v for k, v in value.items() if k not in TIMING_KEYS})
            elif key not in TIMING_KEYS:
                fields[f"{stage}.{key}"] = value
    return fields


def test_same_config_and_seed_reproduce_every_metric(run, tmp_path):
    config, workdir, _ = run
    first = json.loads((workdir / "results.json").read_text())
    train_and_evaluate(config, tmp_path)
    second = json.loads((tmp_path / "results.json").read_text())
    assert metric_fields(second) == metric_fields(first)
    assert first["versions"]["tensorflow"] and first["device_count"] == 1
    # Left out, `deterministic` is None: on for this CPU run, recorded with the results.
    assert first["config"]["deterministic"] is None and "deterministic" not in config
    assert first["op_determinism"] is True


def test_killed_run_resumes_to_the_same_result(run, tmp_path):
    """SIGKILL in the middle of the student stage, run again: same weights, same metrics."""
    _, reference_dir, _ = run
    root = Path(__file__).parents[2]
    command = [
        sys.executable,
        "-c",
        "import sys; from tests.experiment.test_train_and_evaluate import tiny_config; "
        "from iekd_keras.experiment.train import train_and_evaluate; "
        "train_and_evaluate(tiny_config(), sys.argv[1])",
        str(tmp_path),
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = subprocess.Popen(
        command, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    marker = tmp_path / "student" / "backup" / "training_metadata.json"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        if marker.exists() and json.loads(marker.read_text() or "{}").get("epoch", 0) >= 1:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    assert process.wait(timeout=60) == -signal.SIGKILL, "the run ended before it was killed"
    assert not (tmp_path / "results.json").exists()

    finished = subprocess.run(
        command, cwd=root, env=env, capture_output=True, text=True, timeout=240
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    resumed = json.loads((tmp_path / "results.json").read_text())
    reference = json.loads((reference_dir / "results.json").read_text())
    assert metric_fields(resumed) == metric_fields(reference)
    got = keras.saving.load_model(tmp_path / "student" / "last.keras").get_weights()
    want = keras.saving.load_model(reference_dir / "student" / "last.keras").get_weights()
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)
    epochs = [
        row.split(",")[0] for row in (tmp_path / "student" / "log.csv").read_text().splitlines()[1:]
    ]
    assert sorted(set(epochs)) == ["0", "1", "2", "3"]


def test_mutual_learning_run(tmp_path):
    from configs import quickstart_dml

    config = quickstart_dml.get_config("ie,smoke")
    config.data.image_size = 8
    config.mutual.epochs = 1
    config.optimizer.milestones = ()
    config.mutual.factor_channels = 8
    config.mutual.export_peer = 2
    config.batch_size = 128
    config.verbose = 0
    results = train_and_evaluate(config, tmp_path, data=load_digits(image_size=8))
    assert set(results["stages"]) == {"peer1", "peer2"}
    for peer in ("peer1", "peer2"):
        summary = results["stages"][peer]
        assert 0 <= summary["last_test_accuracy"] <= summary["best_test_accuracy"] <= 1
        assert summary["final_logs"][f"{peer}_exploration_loss"] < 0
        assert (tmp_path / "mutual" / f"last_{peer}.keras").exists()
        assert (tmp_path / "mutual" / f"best_{peer}.keras").exists()
    exported = keras.saving.load_model(tmp_path / "export" / "student.keras")
    peer2 = keras.saving.load_model(tmp_path / "mutual" / "last_peer2.keras")
    for a, b in zip(exported.get_weights(), peer2.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_batch_size_not_divisible_by_replicas(monkeypatch, tmp_path):
    from iekd_keras.experiment import train

    class ThreeReplicas:
        num_replicas_in_sync = 3

        def scope(self):
            return contextlib.nullcontext()

    monkeypatch.setattr(train, "make_strategy", lambda name: ThreeReplicas())
    config = quickstart.get_config("smoke")
    with pytest.raises(ValueError, match="config.batch_size=64 is not divisible by the 3 replicas"):
        train.train_and_evaluate(config, tmp_path, data=load_digits(8))


def test_weak_teacher_stops_the_run(tmp_path):
    """The teacher sanity gate: a teacher below config.teacher.min_accuracy stops the run
    before the student stage."""
    config = quickstart.get_config("smoke")
    config.teacher.skip_sanity_check = False
    config.teacher.min_accuracy = 0.999
    config.data.image_size = 8
    config.teacher.model = "resnet8"
    config.verbose = 0
    with pytest.raises(
        ValueError,
        match=r"The teacher reaches \d+\.\d+% test accuracy, below "
        r"the sanity floor of 99.90% \(chance is 10.00%\)",
    ):
        train_and_evaluate(config, tmp_path, data=load_digits(8))
    assert (tmp_path / "teacher" / "last.keras").exists()
    assert not (tmp_path / "student").exists()
