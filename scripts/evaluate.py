"""Evaluates a saved (logits, features) model on a dataset split.

    python scripts/evaluate.py --config=configs/quickstart.py \
        --checkpoint=runs/quickstart/student/best.keras --split=test
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config whose data block to use.")
_CHECKPOINT = flags.DEFINE_string(
    "checkpoint", None, "A .keras model returning [logits, features]."
)
_SPLIT = flags.DEFINE_enum("split", "test", ["train", "test"], "Split (train: no augmentation).")
flags.mark_flags_as_required(["config", "checkpoint"])


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    import json

    from iekd_keras.evaluation import evaluate_checkpoint

    metrics = evaluate_checkpoint(_CHECKPOINT.value, _CONFIG.value, _SPLIT.value)
    print(json.dumps(metrics, indent=2, sort_keys=True))


if __name__ == "__main__":
    app.run(main)
