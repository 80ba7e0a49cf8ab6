"""Trains teacher -> auto-encoder -> IE-KD student (and the baseline) from a config file.

    python scripts/train.py --config=configs/quickstart.py --workdir=runs/quickstart
    python scripts/train.py --config=configs/quickstart.py:smoke --workdir=/tmp/smoke \
        --config.student.epochs=3

Re-running the same command resumes: finished stages are skipped, an interrupted one restarts
from its last whole epoch.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory of the run (resumed if it exists).")
_ALLOW_CONFIG_CHANGE = flags.DEFINE_bool(
    "allow_config_change", False, "Resume a workdir that was written by a different config."
)
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    from iekd_keras.config_validation import ConfigError
    from iekd_keras.train import train_and_evaluate

    try:
        train_and_evaluate(
            _CONFIG.value, _WORKDIR.value, allow_config_change=_ALLOW_CONFIG_CHANGE.value
        )
    except (ConfigError, FileNotFoundError, PermissionError) as error:
        raise app.UsageError(str(error)) from error


if __name__ == "__main__":
    app.run(main)
