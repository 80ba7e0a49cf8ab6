r"""Exports a trained student for serving, verifies every file in its own runtime on the test
split, and prints (and writes to report.json) the table: size, test accuracy, agreement with
the Keras model, latency per image.

    python scripts/export.py --workdir=runs/quickstart \
        --formats=saved_model,litert,litert_int8,onnx
    python scripts/export.py --config=configs/quickstart.py \
        --checkpoint=runs/quickstart/student/best.keras --output=exported/digits

With --workdir the run's own config, served student (the one its export takes) and
<workdir>/export/ are used; --config, --checkpoint and --output replace them. Formats:
saved_model (the default), litert, litert_int8, onnx (ONNX needs the export extra:
pip install 'iekd_keras[export]'). Each takes raw images (0-255) and returns probabilities.

Errors are one sentence on stderr (exit code 2 for flag and config problems, 1 otherwise);
IEKD_DEBUG=1 shows the full traceback.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _cli import FlagMisuse, run_script  # noqa: E402
from absl import flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config whose data sets the normalisation (default: the workdir's)."
)
_WORKDIR = flags.DEFINE_string("workdir", None, "A finished run whose student to export.")
_CHECKPOINT = flags.DEFINE_string(
    "checkpoint", None, "The student .keras file (default: the workdir's served student)."
)
_OUTPUT = flags.DEFINE_string("output", None, "Export directory (default: <workdir>/export).")
_FORMATS = flags.DEFINE_list(
    "formats",
    None,
    "Comma-separated export formats: saved_model, litert, litert_int8, onnx (default: the "
    "workdir config's export_formats, else saved_model).",
)


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    from pathlib import Path

    from iekd_keras.data import load_dataset
    from iekd_keras.experiment.config_checks import complete_config
    from iekd_keras.experiment.evaluation import load_two_output_model
    from iekd_keras.experiment.export import (
        check_formats,
        check_requirements,
        export_and_verify,
        run_config,
        served_student,
    )
    from iekd_keras.experiment.export_verification import format_table

    workdir = Path(_WORKDIR.value) if _WORKDIR.value else None
    if workdir is None:
        for name, flag in (("config", _CONFIG), ("checkpoint", _CHECKPOINT), ("output", _OUTPUT)):
            if flag.value is None:
                raise FlagMisuse(f"The flag --{name} is required when --workdir is not given.")
    config = complete_config(_CONFIG.value) if _CONFIG.value else run_config(workdir)
    formats = _FORMATS.value if _FORMATS.value is not None else config.export_formats
    try:
        formats = check_formats(formats, source=f"--formats={','.join(formats)}")
    except ValueError as error:
        raise FlagMisuse(str(error)) from None
    check_requirements(formats)
    data = load_dataset(config.data)
    if _CHECKPOINT.value:
        student = load_two_output_model(_CHECKPOINT.value, "student")
    else:
        student = served_student(workdir, config, data)
    output = Path(_OUTPUT.value) if _OUTPUT.value else workdir / "export"
    paths, rows = export_and_verify(student, output, data, formats, config.eval_batch_size)
    print(format_table(rows))
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    print(f"report: {output / 'report.json'}")


if __name__ == "__main__":
    run_script(main)
