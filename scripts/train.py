r"""Trains teacher -> auto-encoder -> IE-KD student (and the baseline) from a config file.

    python scripts/train.py --config=configs/quickstart.py --workdir=runs/quickstart
    python scripts/train.py --config=configs/quickstart.py:smoke --workdir=/tmp/smoke \
        --config.student.epochs=3

Re-running the same command resumes: finished stages are skipped, an interrupted one (Ctrl-C
included) restarts from its last whole epoch. Errors are one sentence on stderr (exit code 2
for flag and config problems, 1 for the run's, 130 for Ctrl-C); IEKD_DEBUG=1 shows the full
traceback.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _cli import run_script  # noqa: E402
from absl import flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file (required).")
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Directory of the run, resumed if it exists (required)."
)
_ALLOW_CONFIG_CHANGE = flags.DEFINE_bool(
    "allow_config_change", False, "Resume a workdir that was written by a different config."
)


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    from iekd_keras.experiment.train import train_and_evaluate

    train_and_evaluate(
        _CONFIG.value, _WORKDIR.value, allow_config_change=_ALLOW_CONFIG_CHANGE.value
    )


if __name__ == "__main__":
    run_script(main, required=("config", "workdir"), resumable=True)
