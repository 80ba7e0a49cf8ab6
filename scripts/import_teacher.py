r"""Imports a teacher trained with PyTorch into a `.keras` file the experiments load.

    python scripts/import_teacher.py --zoo=repdistiller --arch=resnet32x4 \
        --checkpoint=resnet32x4_vanilla/ckpt_epoch_240.pth --num_classes=100 \
        --output=teachers/resnet32x4.keras

The `.keras` file returns `[logits, features]`, loads in safe mode and is what
`--config.teacher.checkpoint` takes. Zoos: `repdistiller` (RepDistiller's `models/`, arch names
as its `model_dict`) and `iekd` (the released IE-KD code's `model/`, arch names as the
library's registry: resnet56, resnet56b, wrn_40_2, mobilenet, ...). A checkpoint holding
several networks (the released IE-KD processors save "teacher", "student", ...) needs
`--state_key`. Reading checkpoints needs torch (the `pytorch` extra). See docs/teacher_import.md.

Every mistake (unknown zoo or arch, missing or unreadable checkpoint, tensors that do not fit
the network, missing output directory, torch not installed) is one sentence on stderr with exit
code 2, and nothing is written: the file is written under a temporary name, loaded back in safe
mode, then renamed. IEKD_DEBUG=1 shows the full traceback.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pathlib import Path  # noqa: E402

from _cli import BadConfig, run_script  # noqa: E402
from absl import flags, logging  # noqa: E402

_ZOO = flags.DEFINE_string("zoo", "repdistiller", "Zoo of the network: repdistiller or iekd.")
_ARCH = flags.DEFINE_string("arch", None, "Network name in the zoo, e.g. resnet32x4 (required).")
_CHECKPOINT = flags.DEFINE_string(
    "checkpoint", None, "The PyTorch checkpoint (.pth / .pth.tar) (required)."
)
_NUM_CLASSES = flags.DEFINE_integer(
    "num_classes", 100, "Number of classes of the checkpoint.", lower_bound=1
)
_INPUT_SHAPE = flags.DEFINE_list(
    "input_shape", ["32", "32", "3"], "Image height, width and channels, comma-separated."
)
_STATE_KEY = flags.DEFINE_string(
    "state_key", None, "Key of the network in a checkpoint holding several (e.g. teacher)."
)
_OUTPUT = flags.DEFINE_string("output", None, "The .keras file to write (required).")


class ImportRefused(BadConfig):
    """An input the import refuses: told in one sentence, exit code 2 (as a config problem)."""


def _input_shape(values):
    try:
        shape = tuple(int(value) for value in values)
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise ImportRefused(
            f"--input_shape must be three positive integers (height,width,channels), e.g. "
            f"32,32,3; got {','.join(values)!r}."
        )
    return shape


def _checked_paths(checkpoint, output):
    """The checkpoint and output paths, refused before TensorFlow loads when unusable."""
    checkpoint, output = Path(checkpoint), Path(output)
    if not checkpoint.is_file():
        what = "is a directory" if checkpoint.is_dir() else "does not exist"
        raise ImportRefused(f"The PyTorch checkpoint {str(checkpoint)!r} {what}.")
    if output.suffix != ".keras":
        raise ImportRefused(f"--output must name a .keras file; got {str(output)!r}.")
    if output.is_dir():
        raise ImportRefused(f"--output {str(output)!r} is a directory; expected a .keras file.")
    directory = output.parent
    if not directory.is_dir():
        raise ImportRefused(
            f"The directory {str(directory)!r} of --output does not exist; create it first."
        )
    return checkpoint, output


def _save_checked(model, output):
    """Saves under a temporary name in the output's directory, loads that back in safe mode
    as the experiments do, then renames it: a refusal or a crash leaves nothing behind."""
    import tempfile

    from iekd_keras.experiment.evaluation import load_two_output_model

    handle, temporary = tempfile.mkstemp(
        prefix=f".{output.stem}.", suffix=".keras", dir=output.parent
    )
    os.close(handle)
    try:
        model.save(temporary)
        load_two_output_model(temporary, "imported teacher")
        os.replace(temporary, output)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    checkpoint, output = _checked_paths(_CHECKPOINT.value, _OUTPUT.value)
    input_shape = _input_shape(_INPUT_SHAPE.value)

    from iekd_keras.models.pytorch_import import import_teacher

    try:
        teacher = import_teacher(
            _ZOO.value,
            _ARCH.value,
            checkpoint,
            num_classes=_NUM_CLASSES.value,
            input_shape=input_shape,
            state_key=_STATE_KEY.value,
        )
    except (ValueError, OSError, ImportError) as error:
        raise ImportRefused(str(error)) from error
    _save_checked(teacher, output)
    print(
        f"{output}: {_ARCH.value} of the {_ZOO.value} zoo from {checkpoint}, "
        f"{teacher.count_params():,} parameters, outputs [logits, features]."
    )


if __name__ == "__main__":
    run_script(main, required=("arch", "checkpoint", "output"))
