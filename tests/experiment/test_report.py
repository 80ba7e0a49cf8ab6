"""The report: mean ± std per method over seeds, and the plots."""

import json
import sys

import pytest

from iekd_keras.experiment.recipes import base_config
from iekd_keras.experiment.report import collect_rows, markdown_table, plot_runs, run_label


def fake_run(path, config, stages, log_rows):
    path.mkdir(parents=True)
    (path / "results.json").write_text(json.dumps({"config": config, "stages": stages}))
    for stage, rows in log_rows.items():
        (path / stage).mkdir()
        keys = list(rows[0])
        lines = [",".join(keys)] + [",".join(str(row[k]) for k in keys) for row in rows]
        (path / stage / "log.csv").write_text("\n".join(lines) + "\n")


def test_table_aggregates_seeds_per_method(tmp_path):
    ie_kd = base_config().to_dict()
    dml = base_config().to_dict()
    dml["method"] = "dml"
    workdirs = []
    for seed, (best, last) in enumerate([(0.90, 0.88), (0.94, 0.92)]):
        workdir = tmp_path / f"iekd_{seed}"
        stages = {
            "student": {"model": "resnet8", "best_test_accuracy": best, "last_test_accuracy": last},
            "baseline": {"model": "resnet8", "best_test_accuracy": 0.8, "last_test_accuracy": 0.8},
            "autoencoder": {"model": "factor32"},
        }
        rows = [
            {"epoch": 0, "val_accuracy": 0.5, "inheritance_loss": 0.02, "exploration_loss": -0.03},
            {"epoch": 1, "val_accuracy": best, "inheritance_loss": 0.01, "exploration_loss": -0.05},
        ]
        fake_run(workdir, ie_kd, stages, {"student": rows, "baseline": rows})
        workdirs.append(workdir)
    dml_dir = tmp_path / "dml_0"
    peer_stages = {
        f"peer{k}": {"model": "resnet8", "best_test_accuracy": 0.7, "last_test_accuracy": 0.6}
        for k in (1, 2)
    }
    dml_rows = [{"epoch": 0, "val_peer1_accuracy": 0.7, "val_peer2_accuracy": 0.6}]
    fake_run(dml_dir, dml, peer_stages, {"mutual": dml_rows})
    workdirs.append(dml_dir)

    table = markdown_table(collect_rows(workdirs))
    assert "| IE | resnet8 | 92.00 ± 2.83 | 90.00 ± 2.83 | 2 |" in table
    assert "| student alone | resnet8 | 80.00 ± 0.00 | 80.00 ± 0.00 | 2 |" in table
    assert "| DML peer1 | resnet8 | 70.00 ± 0.00 | 60.00 ± 0.00 | 1 |" in table
    assert "factor32" not in table
    plots = plot_runs(workdirs, tmp_path / "report")
    assert all(path.stat().st_size > 5000 for path in plots.values())


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


def test_plots_without_matplotlib_name_the_report_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    with pytest.raises(ImportError, match=r'pip install -e "\.\[report\]"'):
        plot_runs([], tmp_path)
