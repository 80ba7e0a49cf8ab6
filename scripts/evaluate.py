r"""Evaluates a saved (logits, features) model on a dataset split.

    python scripts/evaluate.py --config=configs/quickstart.py \
        --checkpoint=runs/quickstart/student/best.keras --split=test

Errors are one sentence on stderr (exit code 2 for flag and config problems, 1 otherwise);
IEKD_DEBUG=1 shows the full traceback.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _cli import run_script  # noqa: E402
from absl import flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config whose data block to use (required)."
)
_CHECKPOINT = flags.DEFINE_string(
    "checkpoint", None, "A .keras model returning [logits, features] (required)."
)
_SPLIT = flags.DEFINE_enum("split", "test", ["train", "test"], "Split (train: no augmentation).")


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    import json

    from iekd_keras.experiment.evaluation import evaluate_checkpoint

    metrics = evaluate_checkpoint(_CHECKPOINT.value, _CONFIG.value, _SPLIT.value)
    print(json.dumps(metrics, indent=2, sort_keys=True))


if __name__ == "__main__":
    run_script(main, required=("config", "checkpoint"))
