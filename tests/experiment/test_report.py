"""The report: one row per recipe, every training counted once, paired differences with their
t intervals (numbers computed by hand), and the plots."""

import json
import math
import sys

import pytest

from iekd_keras.experiment.methods import apply_method
from iekd_keras.experiment.recipes import base_config
from iekd_keras.experiment.report import (
    collect_rows,
    markdown_table,
    paired_difference,
    plot_runs,
    run_label,
    stage_recipe,
    student_t_cdf,
    student_t_quantile,
)

pytestmark = pytest.mark.backend_agnostic

CHECKPOINT = "/shared/teacher/last.keras"


def config_of(method="ie", seed=0, checkpoint="", **changes):
    """A run's config as results.json records it: `changes` maps "group.key" to a value."""
    config = apply_method(base_config(), method)
    config.seed = seed
    config.teacher.checkpoint = checkpoint
    for path, value in changes.items():
        group, _, key = path.rpartition(".")
        (config[group] if group else config)[key] = value
    return json.loads(json.dumps(config.to_dict()))


def accuracy(best, last=None):
    return {"best_test_accuracy": best, "last_test_accuracy": best if last is None else last}


def fake_run(path, config, stages, log_rows=None):
    """A finished run: results.json (every stage on resnet8 unless it says otherwise) and the
    CSV logs of `log_rows` {stage: rows}."""
    path.mkdir(parents=True)
    stages = {name: {"model": "resnet8", **summary} for name, summary in stages.items()}
    (path / "results.json").write_text(json.dumps({"config": config, "stages": stages}))
    for stage, rows in (log_rows or {}).items():
        (path / stage).mkdir()
        keys = list(rows[0])
        lines = [",".join(keys)] + [",".join(str(row[k]) for k in keys) for row in rows]
        (path / stage / "log.csv").write_text("\n".join(lines) + "\n")
    return path


def given_teacher(accuracy_value=0.97, path=CHECKPOINT):
    return {"model": "resnet20", "loaded_from": path, **accuracy(accuracy_value)}


def table_rows(workdirs):
    """{method: [cells after the method]} of the markdown table."""
    lines = markdown_table(collect_rows(workdirs)).splitlines()[2:]
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    return {row[0]: row[1:] for row in cells}


def test_runs_of_different_recipes_never_share_a_row(tmp_path):
    """A 2-epoch and a 15-epoch teacher (and the students they taught) are separate rows."""
    runs = [
        fake_run(
            tmp_path / name,
            config_of("ie", seed, **{"teacher.epochs": epochs}),
            {"teacher": accuracy(teacher), "student": accuracy(student)},
        )
        for name, seed, epochs, teacher, student in (
            ("short", 0, 2, 0.30, 0.50),
            ("long_0", 0, 15, 0.90, 0.88),
            ("long_1", 1, 15, 0.95, 0.90),
        )
    ]
    rows = table_rows(runs)
    short = rows["teacher (teacher.epochs=2)"]
    assert short[:4] == ["resnet8", "30.00 ± 0.00", "30.00 ± 0.00", "1"]
    # mean 0.925, sample std sqrt(((-0.025)^2 + 0.025^2) / 1) = 0.035355
    assert rows["teacher (teacher.epochs=15)"][:4] == [
        "resnet8",
        "92.50 ± 3.54",
        "92.50 ± 3.54",
        "2",
    ]
    assert rows["IE (teacher.epochs=2)"][3] == "1"
    assert rows["IE (teacher.epochs=15)"][1:4] == ["89.00 ± 1.41", "89.00 ± 1.41", "2"]
    assert len(rows) == 4


def test_paths_and_output_switches_do_not_split_a_row(tmp_path):
    runs = [
        fake_run(tmp_path / "a", config_of("kd", 0), {"student": accuracy(0.8)}),
        fake_run(
            tmp_path / "b",
            config_of("kd", 1, **{"data.data_dir": "/elsewhere", "verbose": 0, "export": False}),
            {"student": accuracy(0.9)},
        ),
    ]
    assert table_rows(runs)["KD"][1:4] == ["85.00 ± 7.07", "85.00 ± 7.07", "2"]


def test_a_shared_teacher_counts_once(tmp_path):
    """One checkpoint loaded by four student runs is one teacher run; a teacher trained by the
    same config and seed in two runs is one run, a second seed another."""
    loaded = [
        fake_run(
            tmp_path / f"{method}_{seed}",
            config_of(method, seed, CHECKPOINT),
            {"teacher": given_teacher(), "student": accuracy(0.9)},
        )
        for method in ("kd", "ie_kd")
        for seed in (0, 1)
    ]
    rows = table_rows(loaded)
    assert rows["teacher (given)"][:4] == ["resnet20", "97.00 ± 0.00", "97.00 ± 0.00", "1"]
    assert rows["KD"][3] == rows["IE-KD"][3] == "2"

    trained = [
        fake_run(
            tmp_path / f"trained_{method}_{seed}",
            config_of(method, seed),
            {"teacher": accuracy(teacher), "student": accuracy(0.9)},
        )
        for method, seed, teacher in (("kd", 0, 0.96), ("at", 0, 0.96), ("kd", 1, 0.98))
    ]
    assert table_rows(trained)["teacher"][:4] == [
        "resnet8",
        "97.00 ± 1.41",
        "97.00 ± 1.41",
        "2",
    ]


def test_the_student_alone_of_several_methods_counts_once(tmp_path):
    """The baseline stage of a KD and an AT run of the same seed is one training."""
    runs = [
        fake_run(
            tmp_path / f"{method}_{seed}",
            config_of(method, seed),
            {"student": accuracy(best), "baseline": accuracy(alone)},
        )
        for method, seed, best, alone in (
            ("kd", 0, 0.90, 0.85),
            ("at", 0, 0.88, 0.85),
            ("kd", 1, 0.93, 0.90),
        )
    ]
    rows = table_rows(runs)
    assert rows["student alone"][1:] == [
        "87.50 ± 3.54",
        "87.50 ± 3.54",
        "2",
        "reference",
        "reference",
        "0",
    ]
    # KD - alone: 0.05 and 0.03, mean 0.04, std 0.014142, t(0.975, 1) = 12.706205:
    # half width 12.706205 * 0.014142 / sqrt(2) = 0.127062
    assert rows["KD"][4:] == ["+4.00 [-8.71, +16.71]", "+4.00 [-8.71, +16.71]", "2"]
    assert rows["AT"][4:] == ["+3.00 (one pair)", "+3.00 (one pair)", "1"]


def test_paired_differences_and_their_t_interval(tmp_path):
    """KD vs the student alone (method "student"), paired by seed. Last accuracies:
    alone 0.88, 0.91, 0.92 (seeds 0-2), KD 0.90, 0.92, 0.95 and 0.93 (seed 3, no partner).
    Differences 0.02, 0.01, 0.03: mean 0.02, std 0.01, t(0.975, 2) = 4.302653, half width
    4.302653 * 0.01 / sqrt(3) = 0.0248414. Best accuracies are 0.01 above the last ones, so
    their differences are the same."""
    alone = [0.88, 0.91, 0.92]
    kd = [0.90, 0.92, 0.95, 0.93]
    runs = [
        fake_run(
            tmp_path / f"{method}_{seed}",
            config_of(method, seed, CHECKPOINT),
            {"teacher": given_teacher(), "student": accuracy(last + 0.01, last)},
        )
        for method, values in (("student", alone), ("kd", kd))
        for seed, last in enumerate(values)
    ]
    rows = table_rows(runs)
    # KD over its 4 runs: mean 0.925, std sqrt(0.0013 / 3) = 0.020817
    assert rows["KD"] == [
        "resnet8",
        "93.50 ± 2.08",
        "92.50 ± 2.08",
        "4",
        "+2.00 [-0.48, +4.48]",
        "+2.00 [-0.48, +4.48]",
        "3",
    ]
    assert rows["student+CE"][4:] == ["reference", "reference", "0"]
    difference = paired_difference([0.90 - 0.88, 0.92 - 0.91, 0.95 - 0.92])
    assert difference.pairs == 3
    assert difference.mean == pytest.approx(0.02, abs=1e-12)
    assert difference.low == pytest.approx(0.02 - 4.302653 * 0.01 / math.sqrt(3), abs=1e-6)
    assert difference.high == pytest.approx(0.02 + 4.302653 * 0.01 / math.sqrt(3), abs=1e-6)


def test_the_baseline_stage_is_preferred_as_the_student_alone(tmp_path):
    """With both a baseline stage and a cross-entropy-only run, the latter is compared with
    the former like any method."""
    runs = [
        fake_run(
            tmp_path / "student",
            config_of("student", 0),
            {"student": accuracy(0.86), "baseline": accuracy(0.85)},
        )
    ]
    rows = table_rows(runs)
    assert rows["student alone"][4:] == ["reference", "reference", "0"]
    assert rows["student+CE"][4:] == ["+1.00 (one pair)", "+1.00 (one pair)", "1"]


def test_students_of_other_recipes_are_not_paired(tmp_path):
    """A student of another student recipe (more epochs) has no student alone to meet."""
    runs = [
        fake_run(tmp_path / "alone", config_of("student", 0), {"student": accuracy(0.85)}),
        fake_run(
            tmp_path / "kd",
            config_of("kd", 0, **{"student.epochs": 200}),
            {"student": accuracy(0.90)},
        ),
    ]
    assert table_rows(runs)["KD"][4:] == ["-", "-", "0"]


def test_the_recipe_of_each_stage():
    kd = config_of("kd", 3, CHECKPOINT)
    at = config_of("at", 3, CHECKPOINT)
    assert stage_recipe(kd, "baseline") == stage_recipe(at, "baseline")
    assert stage_recipe(kd, "teacher") == stage_recipe(at, "teacher")
    assert stage_recipe(kd, "student") != stage_recipe(at, "student")
    assert stage_recipe(kd, "student")["teacher.checkpoint"] == "given"
    assert "seed" not in stage_recipe(kd, "student")
    assert "student.epochs" not in stage_recipe(kd, "teacher")


def test_t_quantiles():
    # Student's t 0.975 quantiles (standard tables, 9 significant digits).
    known = {1: 12.7062047, 2: 4.30265273, 4: 2.77644511, 9: 2.26215716, 30: 2.04227246}
    for dof, value in known.items():
        assert student_t_quantile(0.975, dof) == pytest.approx(value, rel=1e-8)
    assert student_t_quantile(0.025, 4) == pytest.approx(-2.77644511, rel=1e-8)
    assert student_t_cdf(0.0, 7) == pytest.approx(0.5, abs=1e-15)
    with pytest.raises(ValueError, match="dof=0 must be a whole number"):
        student_t_quantile(0.975, 0)


def test_t_quantiles_equal_scipy():
    stats = pytest.importorskip("scipy.stats")
    for dof in range(1, 41):
        for probability in (0.9, 0.975, 0.995):
            expected = stats.t.ppf(probability, dof)
            assert student_t_quantile(probability, dof) == pytest.approx(expected, rel=1e-9)


def test_labels():
    config = base_config().to_dict()
    assert run_label(config) == "IE"
    config["distillation_losses"] = [{"type": "kd", "kwargs": {}}]
    assert run_label(config) == "IE-KD"
    config["distiller"]["lambda_inh"] = config["distiller"]["lambda_exp"] = 0.0
    assert run_label(config) == "KD"
    config["label"] = "KD (T=4)"
    assert run_label(config) == "KD (T=4)"


def test_missing_run_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="results.json' does not exist"):
        collect_rows([tmp_path / "nothing"])


def test_plots(tmp_path):
    pytest.importorskip("matplotlib")
    rows = [
        {"epoch": 0, "val_accuracy": 0.5, "inheritance_loss": 0.02, "exploration_loss": -0.03},
        {"epoch": 1, "val_accuracy": 0.9, "inheritance_loss": 0.01, "exploration_loss": -0.05},
    ]
    iekd = fake_run(
        tmp_path / "iekd",
        config_of("ie_kd", 0),
        {"student": accuracy(0.9), "baseline": accuracy(0.8), "autoencoder": {}},
        {"student": rows, "baseline": rows},
    )
    dml = {**config_of("ie", 0), "method": "dml"}
    peers = {f"peer{k}": accuracy(0.7, 0.6) for k in (1, 2)}
    mutual_rows = [{"epoch": 0, "val_peer1_accuracy": 0.7, "val_peer2_accuracy": 0.6}]
    dml_run = fake_run(tmp_path / "dml", dml, peers, {"mutual": mutual_rows})
    assert table_rows([iekd, dml_run])["DML peer1"][:4] == [
        "resnet8",
        "70.00 ± 0.00",
        "60.00 ± 0.00",
        "1",
    ]
    plots = plot_runs([iekd, dml_run], tmp_path / "report")
    assert all(path.stat().st_size > 5000 for path in plots.values())


def test_plots_without_matplotlib_name_the_report_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    with pytest.raises(ImportError, match=r'pip install -e "\.\[report\]"'):
        plot_runs([], tmp_path)


def test_rows_put_each_method_before_its_ie_version(tmp_path):
    runs = [
        fake_run(tmp_path / method, config_of(method, 0, CHECKPOINT), {"student": accuracy(0.9)})
        for method in ("ie_kd", "kd", "student", "ie_at", "at")
    ]
    assert list(table_rows(runs)) == ["student+CE", "AT", "IE-AT", "KD", "IE-KD"]
