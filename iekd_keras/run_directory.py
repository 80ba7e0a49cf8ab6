"""The workdir of a run: writable, and never resumed under a different config by accident."""

import json
import tempfile
from pathlib import Path

from iekd_keras.results import write_json_atomically

CONFIG_FILE = "config.json"
# Keys that may change between a run and its resumption without changing its results.
NEUTRAL_KEYS = ("verbose",)
# The refusal names this many differing keys, then counts the rest.
MAX_DIFFERENCES_SHOWN = 5


def _flatten(tree, prefix=""):
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value
    return flat


def config_differences(old, new):
    """`key: old -> new` lines for every key whose value differs (neutral keys ignored)."""
    old_flat, new_flat = _flatten(old), _flatten(new)
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
