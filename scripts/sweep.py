r"""Runs one config over several seeds, each into a sibling workdir `<workdir>/seed_<n>`.

    python scripts/sweep.py --config=configs/quickstart_dml.py:ie --workdir=runs/iedml \
        --seeds=0,1,2

Each seed's run resumes like scripts/train.py (Ctrl-C included); `scripts/report.py
runs/iedml/seed_*` then gives mean and standard deviation over the seeds. Errors are one
sentence on stderr (exit code 2 for flag and config problems, 1 for the run's, 130 for
Ctrl-C); IEKD_DEBUG=1 shows the full traceback.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _cli import run_script  # noqa: E402
from absl import flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file (required).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Parent directory of the per-seed runs (required).")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds to run, comma-separated.")
flags.register_validator(
    "seeds",
    lambda seeds: bool(seeds) and all(seed.strip().isdigit() for seed in seeds),
    message="expected whole numbers >= 0 separated by commas, e.g. --seeds=0,1,2",
)


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    from pathlib import Path

    from iekd_keras.experiment.train import train_and_evaluate

    for seed in _SEEDS.value:
        config = _CONFIG.value.copy_and_resolve_references()
        config.seed = int(seed)
        print(f"=== seed {seed} ===", flush=True)
        train_and_evaluate(config, Path(_WORKDIR.value) / f"seed_{int(seed)}")


if __name__ == "__main__":
    run_script(main, required=("config", "workdir"), resumable=True)
