"""Run records: atomic JSON files, the per-epoch CSV log, and the printed results table."""

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
