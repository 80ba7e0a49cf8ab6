"""Tables and plots over finished runs: one row per recipe, mean ± std over its seeds, and each
method's paired difference to the student alone of the same seed.

A row holds the runs whose config is the same but for the seed: the whole config counts except
`UNTRAINED_KEYS` (the seed, where the data live, and switches that change nothing trained).
Each stage is compared on the part of the config it depends on (`stage_recipe`), and a stage
trained once counts once: a teacher loaded from one checkpoint file by many runs, or trained
by the same teacher config and seed in several runs, is one run of its row, as is the student
alone (`baseline`) that several methods' runs train identically.

Pairing: a method's run and the student alone of the same seed and student recipe start from
the same initial weights and see the same batches, so their difference removes most of the
seed's noise. The student alone is the `baseline` stage or, without one, a run that trains the
student with cross-entropy only (method "student"). The table gives the mean difference with a
95% confidence interval from Student's t distribution (n - 1 degrees of freedom).

Example:
    >>> rows = collect_rows(sorted(Path("runs/replication").glob("*/seed_*")))
    >>> print(markdown_table(rows))
"""

import dataclasses
import json
import math
import statistics
from pathlib import Path

from iekd_keras.experiment import records as run_records
from iekd_keras.experiment.records import flat_config

# Keys that change nothing a stage trains: the seed (a row's runs differ by it), where the
# data live, and what a run prints or writes besides its checkpoints.
UNTRAINED_KEYS = (
    "seed",
    "verbose",
    "export",
    "export_formats",
    "baseline",
    "data.data_dir",
    "data.manual_dir",
    "data.directory",
)
# Per stage, the config it does not depend on (besides UNTRAINED_KEYS); a key names itself
# and every key under it.
STAGE_INDEPENDENT_KEYS = {
    "teacher": (
        "label",
        "method",
        "autoencoder",
        "student",
        "distillation_losses",
        "distiller",
        "mutual",
        "teacher.checkpoint",
        "teacher.taps",
        "teacher.select",
        "teacher.select_from_epoch",
        "teacher.min_accuracy",
        "teacher.skip_sanity_check",
    ),
    "baseline": (
        "label",
        "method",
        "teacher",
        "autoencoder",
        "distillation_losses",
        "distiller",
        "mutual",
        "student.taps",
    ),
}
CONFIDENCE = 0.95
ALONE = "student alone"
PAIRING_NOTE = (
    "Δ: the method minus the student alone of the same seed (same initial student weights and "
    "batches), in percentage points: mean over the pairs [95% confidence interval, Student's t "
    "with pairs - 1 degrees of freedom]."
)


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


# ------------------------------------------------------------------------------------------
# What a stage depends on


def stage_recipe(config, stage):
    """The flat config that `stage`'s result depends on: the whole config but UNTRAINED_KEYS
    and the stage's STAGE_INDEPENDENT_KEYS. For a student, `teacher.checkpoint` reads "given"
    or "": which file it was is the teacher's row, like the seed.

    Example:
        >>> "student.epochs" in stage_recipe(base_config().to_dict(), "teacher")
        False
    """
    ignored = UNTRAINED_KEYS + STAGE_INDEPENDENT_KEYS.get(stage, ())
    recipe = {
        key: value
        for key, value in flat_config(config).items()
        if not any(key == name or key.startswith(f"{name}.") for name in ignored)
    }
    if recipe.get("teacher.checkpoint"):
        recipe["teacher.checkpoint"] = "given"
    return recipe


def _recipe_key(recipe):
    return json.dumps(recipe, sort_keys=True, default=str)


def trains_alone(config):
    """Whether the run's student stage is the student alone: cross-entropy of weight 1, no
    extra term, no IE term."""
    distiller = config["distiller"]
    return (
        config.get("method") != "dml"
        and not config.get("distillation_losses")
        and not (distiller["lambda_inh"] or distiller["lambda_exp"])
        and distiller["student_loss_weight"] == 1
    )


# ------------------------------------------------------------------------------------------
# Runs and rows


@dataclasses.dataclass(frozen=True)
class StageResult:
    """One trained model of one run.

    Attributes:
        name: the method name of its row ("IE-KD", "student alone", "teacher").
        stage: the results entry ("teacher", "student", "baseline", "peer1", ...).
        model: the network's name.
        recipe: the flat config it depends on (`stage_recipe`).
        seed: the run's seed.
        identity: equal for two results of the same training, counted once.
        pairing: (student-alone recipe, seed) of the student alone it is compared with; None
            for results that are not compared.
        alone: it is a student alone, the reference of its `pairing`.
        best: best test accuracy over the epochs.
        last: test accuracy of the last epoch.
        workdir: the run it comes from.
    """

    name: str
    stage: str
    model: str
    recipe: dict
    seed: int
    identity: tuple
    pairing: tuple | None
    alone: bool
    best: float
    last: float
    workdir: str


@dataclasses.dataclass
class Row:
    """The results of one recipe: `name` as shown (with the config keys that tell it from the
    rows of the same method and model), their mean ± std and paired differences."""

    name: str
    stage: str
    model: str
    recipe: dict
    results: list


def read_results(workdir):
    """The StageResults of one finished run (stages without test accuracy left out)."""
    path = Path(workdir) / "results.json"
    if not path.exists():
        raise FileNotFoundError(
            f"{str(path)!r} does not exist: is {str(workdir)!r} a finished run?"
        )
    results = json.loads(path.read_text())
    config, stages = results["config"], results["stages"]
    seed = config.get("seed", results.get("seed"))
    label = run_label(config)
    teacher = _teacher_identity(config, stages.get("teacher"), seed)
    alone_key = _recipe_key(stage_recipe(config, "baseline"))
    found = []
    for stage, summary in stages.items():
        if summary.get("best_test_accuracy") is None:
            continue
        pairing, alone = None, False
        if stage == "teacher" and summary.get("loaded_from"):
            name, recipe = "teacher (given)", {"teacher.checkpoint": summary["loaded_from"]}
            identity = teacher
        elif stage == "teacher":
            name, recipe = "teacher", stage_recipe(config, "teacher")
            identity = teacher
        elif stage == "baseline":
            name, recipe = ALONE, stage_recipe(config, "baseline")
            identity = ("baseline", alone_key, seed)
            pairing, alone = (alone_key, seed), True
        elif stage == "student":
            name, recipe = label, stage_recipe(config, "student")
            identity = ("student", _recipe_key(recipe), seed, teacher)
            pairing, alone = (alone_key, seed), trains_alone(config)
        else:  # the peers of a mutual run
            name, recipe = f"{label} {stage}", stage_recipe(config, stage)
            identity = (stage, _recipe_key(recipe), seed)
        found.append(
            StageResult(
                name=name,
                stage=stage,
                model=summary.get("model", "-"),
                recipe=recipe,
                seed=seed,
                identity=identity,
                pairing=pairing,
                alone=alone,
                best=summary["best_test_accuracy"],
                last=summary["last_test_accuracy"],
                workdir=str(workdir),
            )
        )
    return found


def _teacher_identity(config, summary, seed):
    """The same teacher: the same checkpoint file, or the same teacher recipe and seed."""
    if summary is None:
        return None
    if summary.get("loaded_from"):
        return ("teacher file", str(Path(summary["loaded_from"]).expanduser().resolve()))
    return ("teacher", _recipe_key(stage_recipe(config, "teacher")), seed)


def collect_rows(workdirs):
    """The rows of the runs in `workdirs` (each holding a results.json): every result
    counted once, grouped by method, stage, model and recipe, in table order (teachers, the
    student alone, then the methods by name)."""
    seen, grouped = set(), {}
    for workdir in workdirs:
        for result in read_results(workdir):
            if result.identity in seen:
                continue
            seen.add(result.identity)
            key = (result.name, result.stage, result.model, _recipe_key(result.recipe))
            if key not in grouped:
                grouped[key] = Row(result.name, result.stage, result.model, result.recipe, [])
            grouped[key].results.append(result)
    rows = list(grouped.values())
    _name_the_differences(rows)
    return sorted(rows, key=_table_order)


def _table_order(row):
    """Teachers, the student alone, then the methods, each beside its IE version (AT, IE-AT)."""
    rank = 0 if row.stage == "teacher" else 1 if all(r.alone for r in row.results) else 2
    return rank, row.name.removeprefix("IE-"), row.name.startswith("IE-"), row.name, row.model


def _name_the_differences(rows, shown=3):
    """Rows of the same method and model but different recipes get the keys that differ."""
    by_method = {}
    for row in rows:
        by_method.setdefault((row.name, row.stage, row.model), []).append(row)
    for siblings in by_method.values():
        if len(siblings) < 2:
            continue
        keys = sorted(set().union(*(row.recipe for row in siblings)))
        differing = [
            key
            for key in keys
            if len({json.dumps(row.recipe.get(key), default=str) for row in siblings}) > 1
        ]
        for row in siblings:
            parts = [f"{key}={_value_text(row.recipe.get(key))}" for key in differing[:shown]]
            more = ", ..." if len(differing) > shown else ""
            row.name = f"{row.name} ({', '.join(parts)}{more})"


def _value_text(value):
    return value if isinstance(value, str) else json.dumps(value)


# ------------------------------------------------------------------------------------------
# Paired differences


@dataclasses.dataclass(frozen=True)
class PairedDifference:
    """Mean of paired differences and its confidence interval (None with one pair)."""

    mean: float
    low: float | None
    high: float | None
    pairs: int


def paired_difference(differences, confidence=CONFIDENCE):
    """Mean of `differences` with its two-sided t interval (n - 1 degrees of freedom).

    Example:
        >>> paired_difference([0.02, 0.01, 0.03])  # t(0.975, 2) = 4.3027
        PairedDifference(mean=0.02, low=-0.00484..., high=0.04484..., pairs=3)
    """
    differences = list(differences)
    if not differences:
        raise ValueError("paired_difference needs at least one difference; got none.")
    mean = statistics.fmean(differences)
    if len(differences) < 2:
        return PairedDifference(mean, None, None, 1)
    quantile = student_t_quantile(0.5 + confidence / 2, len(differences) - 1)
    half_width = quantile * statistics.stdev(differences) / math.sqrt(len(differences))
    return PairedDifference(mean, mean - half_width, mean + half_width, len(differences))


def student_t_cdf(t, dof):
    """P(T <= t) for Student's t with a whole number `dof` of degrees of freedom, in closed
    form (Abramowitz & Stegun 26.7.3-4).

    Example:
        >>> round(student_t_cdf(4.302653, 2), 6)
        0.975
    """
    _check_dof(dof)
    theta = math.atan(t / math.sqrt(dof))
    cos_squared = math.cos(theta) ** 2
    if dof % 2:  # odd: (2/pi) (theta + sin cos (1 + 2/3 cos^2 + 2*4/(3*5) cos^4 + ...))
        term, series = 1.0, 1.0 if dof > 1 else 0.0
        for k in range(1, (dof - 1) // 2):
            term *= 2 * k / (2 * k + 1) * cos_squared
            series += term
        inside = 2 / math.pi * (theta + math.sin(theta) * math.cos(theta) * series)
    else:  # even: sin (1 + 1/2 cos^2 + 1*3/(2*4) cos^4 + ...)
        term, series = 1.0, 1.0
        for k in range(1, dof // 2):
            term *= (2 * k - 1) / (2 * k) * cos_squared
            series += term
        inside = math.sin(theta) * series
    return (1.0 + inside) / 2.0


def student_t_quantile(probability, dof):
    """The t with P(T <= t) = `probability`, by bisection of `student_t_cdf`.

    Example:
        >>> round(student_t_quantile(0.975, 4), 4)
        2.7764
    """
    if not 0.0 < probability < 1.0:
        raise ValueError(f"probability={probability!r} must lie strictly between 0 and 1.")
    _check_dof(dof)
    if probability < 0.5:
        return -student_t_quantile(1.0 - probability, dof)
    low, high = 0.0, 1.0
    while student_t_cdf(high, dof) < probability:
        low, high = high, 2.0 * high
    for _ in range(100):
        middle = (low + high) / 2.0
        low, high = (middle, high) if student_t_cdf(middle, dof) < probability else (low, middle)
    return (low + high) / 2.0


def _check_dof(dof):
    if isinstance(dof, bool) or not isinstance(dof, int) or dof < 1:
        raise ValueError(f"dof={dof!r} must be a whole number of degrees of freedom, at least 1.")


def _references(rows):
    """(student-alone recipe, seed) -> the student alone: the baseline stage where there is
    one, else a run of the student trained alone."""
    references = {}
    for result in sorted(
        (r for row in rows for r in row.results if r.alone), key=lambda r: r.stage == "baseline"
    ):
        references[result.pairing] = result
    return references


def row_differences(row, references):
    """{"best": PairedDifference | None, "last": ...} of `row` against the student alone of
    the same seed; None where no result of the row has a partner."""
    pairs = [
        (result, references[result.pairing])
        for result in row.results
        if result.pairing in references and references[result.pairing].identity != result.identity
    ]
    return {
        metric: paired_difference(getattr(a, metric) - getattr(b, metric) for a, b in pairs)
        if pairs
        else None
        for metric in ("best", "last")
    }


# ------------------------------------------------------------------------------------------
# The table


def _mean_std(values):
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * mean:.2f} ± {100 * std:.2f}"


def _difference_text(difference, reference):
    if difference is None:
        return "reference" if reference else "-"
    if difference.low is None:
        return f"{100 * difference.mean:+.2f} (one pair)"
    low, high = 100 * difference.low, 100 * difference.high
    return f"{100 * difference.mean:+.2f} [{low:+.2f}, {high:+.2f}]"


def markdown_table(rows):
    """The markdown table: method, model, best and last top-1 (%) as mean ± std, runs, and
    the paired differences to the student alone (see PAIRING_NOTE) with their pair count."""
    references = _references(rows)
    lines = [
        "| method | model | best top-1 (%) | last top-1 (%) | runs "
        "| Δ best vs alone (pp) [95% CI] | Δ last vs alone (pp) [95% CI] | pairs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        differences = row_differences(row, references)
        reference = row.stage != "teacher" and all(
            r.alone and references.get(r.pairing) is r for r in row.results
        )
        pairs = differences["last"].pairs if differences["last"] else 0
        best = [r.best for r in row.results]
        last = [r.last for r in row.results]
        lines.append(
            f"| {row.name} | {row.model} | {_mean_std(best)} | {_mean_std(last)} "
            f"| {len(row.results)} | {_difference_text(differences['best'], reference)} "
            f"| {_difference_text(differences['last'], reference)} | {pairs} |"
        )
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------
# Plots


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
                name = f"{_plot_name(label, stage)} ({workdir.name})"
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


def _plot_name(label, stage):
    if stage == "student":
        return label
    if stage == "baseline":
        return ALONE
    if stage.startswith("peer"):
        return f"{label} {stage}"
    return stage
