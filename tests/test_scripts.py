"""The absl scripts, run as a user runs them: train (with overrides), evaluate, export."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def run_script(name, *args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / name), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("cli")
    overrides = [
        "--config.data.image_size=8",
        "--config.teacher.model=resnet8",
        "--config.teacher.epochs=1",
        "--config.student.epochs=1",
        "--config.baseline=False",
        "--config.export=False",
        "--config.autoencoder.factor_channels=8",
        "--config.optimizer.milestones=()",
        "--config.batch_size=256",
        "--config.verbose=0",
    ]
    result = run_script(
        "train.py", "--config=configs/quickstart.py:smoke", f"--workdir={workdir}", *overrides
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir, result.stdout


def test_train_prints_the_table_and_applies_overrides(trained):
    workdir, stdout = trained
    assert "stage" in stdout and "best acc" in stdout and "baseline" not in stdout
    results = json.loads((workdir / "results.json").read_text())
    assert results["config"]["student"]["epochs"] == 1
    assert results["stages"]["teacher"]["model"] == "resnet8"


def test_evaluate_reports_accuracy(trained):
    workdir, _ = trained
    result = run_script(
        "evaluate.py",
        "--config=configs/quickstart.py",
        "--config.data.image_size=8",
        f"--checkpoint={workdir / 'student' / 'last.keras'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads(result.stdout)
    recorded = json.loads((workdir / "student" / "summary.json").read_text())
    assert metrics["accuracy"] == pytest.approx(recorded["last_test_accuracy"], abs=1e-6)


def test_export_writes_a_saved_model(trained, tmp_path):
    workdir, _ = trained
    result = run_script(
        "export.py",
        "--config=configs/quickstart.py",
        "--config.data.image_size=8",
        f"--checkpoint={workdir / 'student' / 'best.keras'}",
        f"--output={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "saved_model" / "saved_model.pb").exists()
    assert (tmp_path / "student.keras").exists()


def test_missing_checkpoint_is_named():
    result = run_script(
        "evaluate.py", "--config=configs/quickstart.py", "--checkpoint=/nowhere/student.keras"
    )
    assert result.returncode != 0
    assert "The model checkpoint '/nowhere/student.keras' does not exist" in result.stderr
