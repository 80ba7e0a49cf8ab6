"""Tables and plots over finished runs: one row per method, mean and std over seeds."""

import json
import statistics
from collections import defaultdict
from pathlib import Path

from iekd_keras.experiment import records as run_records


def run_label(config):
    """A method's name from its config: `config.label` when set, else derived (e.g. "IE",
    "KD", "IE-KD", "IE-AT", "DML", "IE-DML")."""
    if config.get("label"):
        return config["label"]
    if config.get("method") == "dml":
        mutual = config["mutual"]
        return "IE-DML" if mutual["lambda_inh"] or mutual["lambda_exp"] else "DML"
    from iekd_keras.experiment.methods import label

    return label(config)


def collect_rows(workdirs):
    """Rows (method, stage, model) -> lists of best/last accuracies over the runs found."""
    grouped = defaultdict(lambda: {"best": [], "last": [], "runs": []})
    for workdir in workdirs:
        path = Path(workdir) / "results.json"
        if not path.exists():
            raise FileNotFoundError(f"{str(path)!r} does not exist: is {workdir!r} a finished run?")
        results = json.loads(path.read_text())
        label = run_label(results["config"])
        for stage, summary in results["stages"].items():
            if summary.get("best_test_accuracy") is None:
                continue
            row = _row_name(label, stage)
            key = (row, summary.get("model", "-"))
            grouped[key]["best"].append(summary["best_test_accuracy"])
            grouped[key]["last"].append(summary["last_test_accuracy"])
            grouped[key]["runs"].append(str(workdir))
    return grouped


def _row_name(label, stage):
    if stage == "student":
        return label
    if stage == "baseline":
        return "student alone"
    if stage.startswith("peer"):
        return f"{label} {stage}"
    return stage


def _mean_std(values):
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * mean:.2f} ± {100 * std:.2f}"


def markdown_table(grouped):
    """The markdown table: method, model, best and last top-1 (%) as mean ± std, runs."""
    lines = [
        "| method | model | best top-1 (%) | last top-1 (%) | runs |",
        "|---|---|---|---|---|",
    ]
    for (row, model), values in sorted(grouped.items()):
        lines.append(
            f"| {row} | {model} | {_mean_std(values['best'])} | {_mean_std(values['last'])} "
            f"| {len(values['best'])} |"
        )
    return "\n".join(lines)


def plot_runs(workdirs, output_dir):
    """PNG plots: test accuracy per epoch per method, and the loss terms over training."""
    try:
        import matplotlib
    except ImportError as error:
        raise ImportError(
            "The report's plots need matplotlib, which is not installed: install the report "
            'extra with pip install -e ".[report]" (or pip install matplotlib).'
        ) from error

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    accuracy_figure, accuracy_axes = plt.subplots(figsize=(7, 4.5))
    terms_figure, terms_axes = plt.subplots(figsize=(7, 4.5))
    for workdir in workdirs:
        workdir = Path(workdir)
        results = json.loads((workdir / "results.json").read_text())
        label = run_label(results["config"])
        for stage in results["stages"]:
            log_dir = "mutual" if stage.startswith("peer") else stage
            rows = run_records.read_csv_log(workdir / log_dir / "log.csv")
            prefix = f"{stage}_" if stage.startswith("peer") else ""
            accuracy = [row.get(f"val_{prefix}accuracy") for row in rows]
            if rows and None not in accuracy:
                name = f"{_row_name(label, stage)} ({workdir.name})"
                accuracy_axes.plot(range(1, len(rows) + 1), accuracy, label=name)
            for term in ("inheritance_loss", "exploration_loss"):
                values = [row.get(f"{prefix}{term}") for row in rows]
                if rows and None not in values and stage in ("student", "peer1"):
                    terms_axes.plot(
                        range(1, len(rows) + 1), values, label=f"{label} {term} ({workdir.name})"
                    )
    for axes, ylabel in ((accuracy_axes, "test top-1"), (terms_axes, "loss term")):
        axes.set_xlabel("epoch")
        axes.set_ylabel(ylabel)
        axes.grid(alpha=0.3)
        if axes.lines:
            axes.legend(fontsize=6)
    paths = {"accuracy": output_dir / "accuracy.png", "loss_terms": output_dir / "loss_terms.png"}
    accuracy_figure.tight_layout()
    accuracy_figure.savefig(paths["accuracy"], dpi=120)
    terms_figure.tight_layout()
    terms_figure.savefig(paths["loss_terms"], dpi=120)
    plt.close(accuracy_figure)
    plt.close(terms_figure)
    return paths
