r"""Exports a trained student for serving: SavedModel (raw images -> probabilities) + .keras.

    python scripts/export.py --config=configs/quickstart.py \
        --checkpoint=runs/quickstart/student/best.keras --output=exported/digits

Errors are one sentence on stderr (exit code 2 for flag and config problems, 1 otherwise);
IEKD_DEBUG=1 shows the full traceback.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _cli import run_script  # noqa: E402
from absl import flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config whose data sets the normalisation (required)."
)
_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "The student .keras file (required).")
_OUTPUT = flags.DEFINE_string("output", None, "Export directory (required).")


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    from iekd_keras.data import load_dataset
    from iekd_keras.experiment.config_checks import complete_config
    from iekd_keras.experiment.evaluation import load_two_output_model
    from iekd_keras.experiment.export import export_student

    student = load_two_output_model(_CHECKPOINT.value, "student")
    data = load_dataset(complete_config(_CONFIG.value).data)
    for kind, path in export_student(student, _OUTPUT.value, data.mean, data.std).items():
        print(f"{kind}: {path}")


if __name__ == "__main__":
    run_script(main, required=("config", "checkpoint", "output"))
