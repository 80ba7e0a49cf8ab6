"""Runs one config over several seeds, each into a sibling workdir `<workdir>/seed_<n>`.

    python scripts/sweep.py --config=configs/quickstart_dml.py:ie --workdir=runs/iedml \
        --seeds=0,1,2

Each seed's run resumes like scripts/train.py; `scripts/report.py runs/iedml/seed_*` then
gives mean and standard deviation over the seeds.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Parent directory of the per-seed runs.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds to run, comma-separated.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    from pathlib import Path

    from iekd_keras.train import train_and_evaluate

    for seed in _SEEDS.value:
        config = _CONFIG.value.copy_and_resolve_references()
        config.seed = int(seed)
        print(f"=== seed {seed} ===", flush=True)
        train_and_evaluate(config, Path(_WORKDIR.value) / f"seed_{int(seed)}")


if __name__ == "__main__":
    app.run(main)
