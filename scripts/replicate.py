r"""Runs a replication protocol: one teacher, then every method x seed loading it, then the report.

    python scripts/replicate.py --protocol=configs/digits_replication.py --workdir=runs/replication

The protocol is a config file with `get_config(method)`, `get_config("teacher")` and the
constants `METHODS`, `SEEDS` and `TEACHER_SEED` (configs/digits_replication.py). The teacher
is trained once, by the "teacher" variant with seed TEACHER_SEED, into `<workdir>/teacher`;
every run of `<workdir>/<method>/seed_<n>` then loads the teacher checkpoint it selected
through `config.teacher.checkpoint`. The report (scripts/report.py's table, with the paired
differences to the student alone) is printed and written to `<workdir>/report.md`.

All runs share one process and one loaded dataset. Running the same command again resumes:
finished stages are skipped and an interrupted one resumes from its last whole epoch.
`--seeds` and `--methods` run a part of the protocol, `--smoke` its 2-epoch variant, and
`--dry_run` prints the runs without training. Errors are one sentence on stderr (exit code 2
for flag and protocol problems, 1 for the runs', 130 for Ctrl-C); IEKD_DEBUG=1 shows the full
traceback.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import importlib.util  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from _cli import BadConfig, run_script  # noqa: E402
from absl import flags, logging  # noqa: E402

_PROTOCOL = flags.DEFINE_string(
    "protocol", "configs/digits_replication.py", "The protocol's config file."
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Parent directory of every run (required).")
_SEEDS = flags.DEFINE_list("seeds", None, "Seeds to run (default: the protocol's SEEDS).")
_METHODS = flags.DEFINE_list("methods", None, "Methods to run (default: the protocol's METHODS).")
_SMOKE = flags.DEFINE_bool("smoke", False, "Run the protocol's smoke variant (2-epoch stages).")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Print the runs and their workdirs; train nothing.")
flags.register_validator(
    "seeds",
    lambda seeds: seeds is None or (bool(seeds) and all(s.strip().isdigit() for s in seeds)),
    message="expected whole numbers >= 0 separated by commas, e.g. --seeds=0,1,2",
)
PROTOCOL_NAMES = ("get_config", "METHODS", "SEEDS", "TEACHER_SEED")


def load_protocol(path):
    """The protocol module of `path`, with every name of PROTOCOL_NAMES."""
    if not Path(path).is_file():
        raise BadConfig(f"The protocol file {path!r} (from --protocol) does not exist.")
    spec = importlib.util.spec_from_file_location("_iekd_protocol", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    missing = [name for name in PROTOCOL_NAMES if not hasattr(module, name)]
    if missing:
        raise BadConfig(
            f"The protocol file {path!r} lacks {', '.join(missing)}; expected "
            "get_config(method), get_config('teacher') and the constants METHODS, SEEDS "
            "and TEACHER_SEED."
        )
    return module


def planned_runs(protocol, workdir, methods, seeds, smoke):
    """[(title, config, workdir)]: the teacher run first, then every method x seed."""
    from iekd_keras.experiment.stages import BEST, LAST

    def config_of(method, seed):
        config = protocol.get_config(f"{method},smoke" if smoke else method)
        config.seed = int(seed)
        return config

    workdir = Path(workdir)
    teacher = config_of("teacher", protocol.TEACHER_SEED)
    selected = BEST if teacher.teacher.select == "best" else LAST
    checkpoint = workdir / "teacher" / "teacher" / selected
    runs = [(f"teacher (seed {protocol.TEACHER_SEED})", teacher, workdir / "teacher")]
    for method in methods:
        if method not in protocol.METHODS:
            raise BadConfig(
                f"--methods names {method!r}, which is not a method of the protocol; expected "
                f"some of {', '.join(protocol.METHODS)}."
            )
        for seed in seeds:
            config = config_of(method, seed)
            config.teacher.checkpoint = str(checkpoint)
            runs.append((f"{method} seed {seed}", config, workdir / method / f"seed_{int(seed)}"))
    return runs


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    protocol = load_protocol(_PROTOCOL.value)
    methods = _METHODS.value or list(protocol.METHODS)
    seeds = [int(seed) for seed in _SEEDS.value] if _SEEDS.value else list(protocol.SEEDS)
    runs = planned_runs(protocol, _WORKDIR.value, methods, seeds, _SMOKE.value)
    if _DRY_RUN.value:
        for title, config, workdir in runs:
            loads = f", teacher {config.teacher.checkpoint}" if config.teacher.checkpoint else ""
            print(f"{title}: {workdir}{loads}")
        return

    import keras

    from iekd_keras.data import load_dataset
    from iekd_keras.experiment.report import PAIRING_NOTE, collect_rows, markdown_table
    from iekd_keras.experiment.train import train_and_evaluate

    data = load_dataset(runs[0][1].data)
    started = time.perf_counter()
    for title, config, workdir in runs:
        print(f"=== {title} ===", flush=True)
        run_started = time.perf_counter()
        train_and_evaluate(config, workdir, data=data)
        print(f"=== {title}: {time.perf_counter() - run_started:.0f} s ===", flush=True)
        keras.backend.clear_session()
    table = markdown_table(collect_rows([workdir for _, _, workdir in runs[1:]]))
    minutes = (time.perf_counter() - started) / 60
    report = f"{table}\n\n{PAIRING_NOTE}\n"
    written = Path(_WORKDIR.value) / "report.md"
    written.write_text(report)
    print(f"\n{report}\n{len(runs)} runs in {minutes:.1f} min; written: {written}")


if __name__ == "__main__":
    run_script(main, required=("workdir",), resumable=True)
