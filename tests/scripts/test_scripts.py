"""The absl scripts, run as a user runs them: train (with overrides, interrupted by Ctrl-C and
resumed), evaluate, export."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


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


OVERRIDES = [
    "--config.data.image_size=8",
    "--config.teacher.model=resnet8",
    "--config.teacher.epochs=2",
    "--config.student.epochs=1",
    "--config.baseline=False",
    "--config.export=False",
    "--config.autoencoder.factor_channels=8",
    "--config.optimizer.milestones=()",
    "--config.batch_size=256",
    "--config.verbose=0",
]


def interrupt_when_backed_up(command, backup_dir):
    """Starts `command`, sends it Ctrl-C (SIGINT) once `backup_dir` holds a whole epoch, and
    returns (exit code, stderr, the backup's metadata right after the interrupt)."""
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    environment.pop("IEKD_DEBUG", None)
    # A Python handler (unlike an ignored SIGINT) is reset to the default in the child, where
    # Python then turns SIGINT into KeyboardInterrupt, as under a terminal.
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.default_int_handler) if in_main_thread else None
    try:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    finally:
        if in_main_thread:
            signal.signal(signal.SIGINT, previous)
    metadata = backup_dir / "training_metadata.json"
    deadline = time.monotonic() + 240
    while not metadata.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    try:
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    backup = json.loads(metadata.read_text()) if metadata.exists() else None
    return process.returncode, stderr, backup


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run interrupted by Ctrl-C during the teacher's second epoch, then resumed by the same
    command."""
    workdir = tmp_path_factory.mktemp("cli")
    command = [
        sys.executable,
        str(ROOT / "scripts" / "train.py"),
        "--config=configs/quickstart.py:smoke",
        f"--workdir={workdir}",
        *OVERRIDES,
    ]
    interrupted = interrupt_when_backed_up(command, workdir / "teacher" / "backup")
    result = run_script(*command[1:])
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir, result.stdout, interrupted


def test_ctrl_c_says_where_keeps_the_backup_and_resumes(trained):
    workdir, stdout, (exit_code, stderr, backup) = trained
    assert exit_code == 130, stderr[-3000:]
    assert "Traceback" not in stderr
    last_line = stderr.strip().splitlines()[-1]
    match = re.fullmatch(
        r"Interrupted in stage 'teacher' at epoch ([12]) of 2 \(1 whole epoch backed up\); "
        r"run the same command again to resume from the last whole epoch\.",
        last_line,
    )
    assert match, stderr[-3000:]
    assert backup["epoch"] == 1
    # The resumed teacher starts after its one backed-up epoch and logs each epoch once.
    assert "[teacher] 2 epochs x 6 steps, global batch 256, resuming at epoch 1" in stdout
    log = (workdir / "teacher" / "log.csv").read_text().splitlines()
    assert sorted({row.split(",")[0] for row in log[1:]}) == ["0", "1"]


def test_train_prints_the_table_and_applies_overrides(trained):
    workdir, stdout, _ = trained
    assert "stage" in stdout and "best acc" in stdout and "baseline" not in stdout
    results = json.loads((workdir / "results.json").read_text())
    assert results["config"]["student"]["epochs"] == 1
    assert results["stages"]["teacher"]["model"] == "resnet8"


def test_evaluate_reports_accuracy(trained):
    workdir, _, _ = trained
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
    workdir, _, _ = trained
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


def test_replicate_dry_run_lists_the_teacher_then_every_method_and_seed(tmp_path):
    result = run_script(
        "replicate.py",
        "--protocol=configs/digits_replication.py",
        f"--workdir={tmp_path}",
        "--methods=student,ie_at",
        "--seeds=0,3",
        "--dry_run",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    teacher = tmp_path / "teacher" / "teacher" / "last.keras"
    assert result.stdout.splitlines() == [
        f"teacher (seed 100): {tmp_path / 'teacher'}",
        *(
            f"{method} seed {seed}: {tmp_path / method / f'seed_{seed}'}, teacher {teacher}"
            for method in ("student", "ie_at")
            for seed in (0, 3)
        ),
    ]
    unknown = run_script(
        "replicate.py", f"--workdir={tmp_path}", "--methods=student,dml", "--dry_run"
    )
    assert unknown.returncode == 2
    assert unknown.stderr.strip().splitlines()[-1] == (
        "error: --methods names 'dml', which is not a method of the protocol; expected some of "
        "student, kd, ie_kd, at, ie_at, ft, ie_ft."
    )


def test_report_writes_the_paired_table(tmp_path):
    """Two seeds of the student alone and of KD: last accuracies 0.80, 0.84 and 0.83, 0.86;
    differences 0.03, 0.02: mean 0.025, std 0.0070711, t(0.975, 1) = 12.706205, half width
    12.706205 * 0.0070711 / sqrt(2) = 0.063531."""
    pytest.importorskip("matplotlib")
    workdirs = []
    for label, values in (("student", (0.80, 0.84)), ("KD", (0.83, 0.86))):
        for seed, value in enumerate(values):
            config = {
                "label": label,
                "seed": seed,
                "method": "ie_kd",
                "student": {"model": "resnet8", "epochs": 4},
                "distillation_losses": [{"type": "kd", "kwargs": {}}] if label == "KD" else [],
                "distiller": {"lambda_inh": 0.0, "lambda_exp": 0.0, "student_loss_weight": 1.0},
            }
            stages = {
                "student": {
                    "model": "resnet8",
                    "best_test_accuracy": value,
                    "last_test_accuracy": value,
                }
            }
            workdir = tmp_path / label / f"seed_{seed}"
            workdir.mkdir(parents=True)
            (workdir / "results.json").write_text(json.dumps({"config": config, "stages": stages}))
            workdirs.append(str(workdir))
    result = run_script("report.py", f"--output={tmp_path / 'report'}", *workdirs)
    assert result.returncode == 0, result.stderr[-3000:]
    report = (tmp_path / "report" / "report.md").read_text()
    assert (
        "| KD | resnet8 | 84.50 ± 2.12 | 84.50 ± 2.12 | 2 | +2.50 [-3.85, +8.85] "
        "| +2.50 [-3.85, +8.85] | 2 |"
    ) in report
    alone = "| student | resnet8 | 82.00 ± 2.83 | 82.00 ± 2.83 | 2 | reference | reference | 0 |"
    assert alone in report
    assert "Δ: the method minus the student alone of the same seed" in report
    assert "| KD | resnet8 |" in result.stdout
