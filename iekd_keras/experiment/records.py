"""Run records: the workdir (writable, never resumed under a different config by accident),
atomic JSON files, the per-epoch CSV log, and the printed results table."""

import csv
import json
import os
import tempfile
from pathlib import Path


def write_json_atomically(path, payload):
    """Writes `payload` to a temporary file beside `path`, then renames it over `path`.

    A kill during the write leaves the previous file (or none), never a truncated one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as stream:
            json.dump(payload, stream, indent=2, sort_keys=True, default=str)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read_csv_log(path):
    """Rows of a Keras CSVLogger file as dicts of floats, one per epoch (the last one logged),
    in epoch order; empty when the file does not exist."""
    path = Path(path)
    if not path.exists():
        return []
    with path.open() as stream:
        rows = list(csv.DictReader(stream))
    rows = [{key: float(value) for key, value in row.items() if value != ""} for row in rows]
    # A resumed run re-logs the epochs it redoes: keep the last row of each epoch.
    by_epoch = {row.get("epoch", index): row for index, row in enumerate(rows)}
    return [by_epoch[epoch] for epoch in sorted(by_epoch)]


def best_and_last(rows, key):
    """(best, last) of a logged metric, where best is the maximum over epochs."""
    values = [row[key] for row in rows if key in row]
    if not values:
        return None, None
    return max(values), values[-1]


def format_table(results):
    """The results table printed at the end of a run."""
    header = (
        f"{'stage':<12}{'model':<14}{'params':>11}{'best acc':>10}{'last acc':>10}{'time s':>9}"
    )
    lines = [header, "-" * len(header)]
    for stage, summary in results["stages"].items():
        best, last = summary.get("best_test_accuracy"), summary.get("last_test_accuracy")
        lines.append(
            f"{stage:<12}{summary.get('model', '-'):<14}"
            f"{summary.get('trainable_parameters', 0):>11,}"
            f"{_percent(best):>10}{_percent(last):>10}{summary.get('wall_time_s', 0.0):>9.1f}"
        )
    return "\n".join(lines)


def _percent(value):
    return "-" if value is None else f"{100 * value:.2f}%"


CONFIG_FILE = "config.json"
# Keys that may change between a run and its resumption without changing its results.
NEUTRAL_KEYS = ("verbose",)
# The refusal names this many differing keys, then counts the rest.
MAX_DIFFERENCES_SHOWN = 5


def flat_config(tree, prefix=""):
    """{"group.key": value} of a nested config dict, tuples as lists (as JSON holds them).

    Example:
        >>> flat_config({"seed": 0, "optimizer": {"milestones": (80, 120)}})
        {'seed': 0, 'optimizer.milestones': [80, 120]}
    """
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flat_config(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value
    return flat


def config_differences(old, new):
    """`key: old -> new` lines for every key whose value differs (neutral keys ignored)."""
    old_flat, new_flat = flat_config(old), flat_config(new)
    lines = []
    for key in sorted(set(old_flat) | set(new_flat)):
        if key in NEUTRAL_KEYS:
            continue
        before, after = old_flat.get(key, "<absent>"), new_flat.get(key, "<absent>")
        if before != after:
            lines.append(f"{key}: {before!r} -> {after!r}")
    return lines


def prepare_workdir(workdir, config, allow_config_change=False):
    """Creates `workdir`, checks it is writable, and records or compares the run's config.

    A workdir written by a different config is refused (the message lists what differs)
    unless `allow_config_change`, in which case the new config is recorded.
    """
    workdir = Path(workdir)
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=workdir, prefix=".write-probe-"):
            pass
    except OSError as error:
        raise PermissionError(
            f"The workdir {str(workdir)!r} cannot be written ({error.strerror or error}); "
            "choose a directory you can write to."
        ) from error
    current = json.loads(json.dumps(config.to_dict(), default=str))
    recorded_path = workdir / CONFIG_FILE
    if recorded_path.exists():
        recorded = json.loads(recorded_path.read_text())
        differences = config_differences(recorded, current)
        if differences and not allow_config_change:
            shown = "; ".join(differences[:MAX_DIFFERENCES_SHOWN])
            if len(differences) > MAX_DIFFERENCES_SHOWN:
                shown += f"; and {len(differences) - MAX_DIFFERENCES_SHOWN} more"
            raise ValueError(
                f"The workdir {str(workdir)!r} holds a run made with a different config "
                f"(recorded -> now: {shown}); use another --workdir, or pass "
                "--allow_config_change to resume it anyway."
            )
    write_json_atomically(recorded_path, current)
    return workdir
