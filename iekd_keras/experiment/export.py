"""Export of the bare student for serving: a TensorFlow SavedModel, LiteRT (float and int8),
ONNX, and a .keras file; each export is verified in its own runtime (`export_verification`).

Every format holds the same serving model: raw images (pixel values 0-255) in, the
normalisation inside, class probabilities out.
"""

import importlib.util
import json
import warnings
from pathlib import Path

import keras
import numpy as np

from iekd_keras.distribute.batchnorm_sync import saved_without_sync
from iekd_keras.experiment import export_verification
from iekd_keras.experiment.records import CONFIG_FILE, write_json_atomically

FORMATS = ("saved_model", "litert", "litert_int8", "onnx")
DEFAULT_FORMATS = ("saved_model",)
# Where each format is written inside the export directory.
ARTIFACTS = {
    "saved_model": "saved_model",
    "litert": "student.tflite",
    "litert_int8": "student_int8.tflite",
    "onnx": "student.onnx",
}
KERAS_FILE = "student.keras"
REPORT_FILE = "report.json"
# The optional packages each format needs, by backend: its converter and the runtime that
# verifies it. TensorFlow itself runs the SavedModel and (without ai-edge-litert) LiteRT files.
REQUIRED_MODULES = {
    "tensorflow": {"onnx": ("tf2onnx", "onnx", "onnxruntime")},
    "jax": {"onnx": ("jax2onnx", "onnx", "onnxruntime")},
}
EXTRA = "pip install 'iekd_keras[export]'"
# Raw training images the int8 quantization calibrates its activation ranges on.
CALIBRATION_IMAGES = 256


def check_formats(formats, source="formats"):
    """The export formats, in order and without repeats; a bad one is refused in one sentence.

    Args:
        formats: names from FORMATS.
        source: how the user gave them, for the message (e.g. "--formats=litert,tflite").

    Example:
        >>> check_formats(["onnx", "saved_model", "onnx"])
        ('onnx', 'saved_model')
    """
    if isinstance(formats, str):
        formats = (formats,)
    formats = tuple(dict.fromkeys(formats))
    valid = ", ".join(FORMATS)
    if not formats:
        raise ValueError(f"{source} names no export format; expected one or more of {valid}.")
    for name in formats:
        if name not in FORMATS:
            raise ValueError(
                f"{source} names {name!r}, which is not an export format; expected one or "
                f"more of {valid}."
            )
    return formats


def check_requirements(formats):
    """Refuses, in one sentence, a format this backend cannot write or whose optional packages
    (converter, runtime) are missing, before anything is exported.

    Example:
        >>> check_requirements(("saved_model", "litert"))  # TensorFlow backend: nothing missing
    """
    backend = keras.backend.backend()
    for name in check_formats(formats):
        if name.startswith("litert") and backend != "tensorflow":
            raise ValueError(
                f"The {name} export needs the TensorFlow backend (KERAS_BACKEND is {backend!r}); "
                "run the export with KERAS_BACKEND=tensorflow."
            )
        needed = REQUIRED_MODULES.get(backend, {}).get(name, ())
        missing = [module for module in needed if importlib.util.find_spec(module) is None]
        if missing:
            # The export extra holds TensorFlow's converter; JAX's (jax2onnx) is not in it.
            install = f"pip install {' '.join(missing)}" if backend == "jax" else EXTRA
            raise ModuleNotFoundError(
                f"The {name} export needs the optional packages {', '.join(missing)}, which "
                f"are not installed; install them: {install}."
            )


def serving_model(student, mean, std, name="serving_student"):
    """Raw images (pixel values 0-255) -> normalisation -> student -> class probabilities.

    Only the student's logits path is kept: no teacher, no factor encoders.

    Example:
        >>> served = serving_model(distiller.student, data.mean, data.std)
        >>> served(raw_images).shape  # (batch, num_classes), rows summing to 1
    """
    inputs = keras.Input(student.inputs[0].shape[1:], name="images")
    # (x / 255 - mean) / std as one per-channel multiply-add: two operators every format
    # (int8 LiteRT included) has.
    scale = [1.0 / (255.0 * float(s)) for s in std]
    offset = [-float(m) / float(s) for m, s in zip(mean, std, strict=True)]
    x = keras.layers.Rescaling(scale, offset, name="normalize")(inputs)
    logits = student(x, training=False)[0]
    probabilities = keras.layers.Softmax(name="probabilities", dtype="float32")(logits)
    return keras.Model(inputs, probabilities, name=name)


def export_student(student, directory, mean, std, formats=DEFAULT_FORMATS, calibration_images=None):
    """Writes the serving model in each of `formats`, and `student.keras` (the two-output
    student itself, for further training), under `directory`.

    Formats (file names in ARTIFACTS): "saved_model" (signature `serve`: images ->
    probabilities), "litert" (float32 .tflite), "litert_int8" (int8 weights and activations,
    float input and output, calibrated on `calibration_images`), "onnx". All are written by
    Keras's `Model.export`; nothing is verified here (see `export_and_verify`).

    Args:
        student: the trained (logits, features) model, e.g. `distiller.student`.
        directory: output directory (created).
        mean, std: the per-channel normalisation of the training data, on the 0-1 scale.
        formats: names from FORMATS.
        calibration_images: raw training images (count, height, width, channels), 0-255;
            needed by "litert_int8" only.

    Returns:
        dict: format -> path, and "keras" -> the .keras file.

    Example:
        >>> export_student(distiller.student, "export", data.mean, data.std)
        >>> served = tf.saved_model.load("export/saved_model").signatures["serve"]
    """
    formats = check_formats(formats)
    check_requirements(formats)
    if "litert_int8" in formats and (calibration_images is None or not len(calibration_images)):
        raise ValueError(
            "The litert_int8 export needs calibration_images: raw training images (0-255) "
            "to calibrate its int8 activations on."
        )
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model = serving_model(student, mean, std)
    paths = {}
    with saved_without_sync(model):
        for name in formats:
            paths[name] = directory / ARTIFACTS[name]
            _WRITERS[name](model, paths[name], calibration_images)
        paths["keras"] = directory / KERAS_FILE
        student.save(paths["keras"])
    return paths


def export_and_verify(
    student, directory, data, formats=DEFAULT_FORMATS, batch_size=256, check=True
):
    """Exports the student (`export_student`), then runs every file in its own runtime on the
    test split of `data` and compares it with the Keras model; writes `report.json`.

    The int8 model is calibrated on CALIBRATION_IMAGES training images
    (export_verification.calibration_images). With `check`, a file that fails its verification
    raises ExportMismatch after the report is written; without, the rows say it
    (`verified: False`) and export_verification.check_rows raises later.

    Args:
        student: the trained (logits, features) model.
        directory: output directory (created).
        data: the dataset the student was trained on (its normalisation and splits).
        formats: names from FORMATS.
        batch_size: images per batch for the accuracy pass.
        check: raise ExportMismatch when a file fails its verification.

    Returns:
        (dict: format -> path, the report rows: one per format, the Keras model's first).

    Example:
        >>> paths, rows = export_and_verify(student, "export", data, ("litert", "onnx"))
        >>> print(export_verification.format_table(rows))
    """
    formats = check_formats(formats)  # export_student checks the requirements
    calibration = None
    if "litert_int8" in formats:
        calibration = export_verification.calibration_images(data, "train", CALIBRATION_IMAGES)
    paths = export_student(student, directory, data.mean, data.std, formats, calibration)
    rows = export_verification.verify_exports(
        serving_model(student, data.mean, data.std),
        paths,
        lambda: export_verification.raw_batches(data, "test", batch_size),
    )
    write_json_atomically(Path(directory) / REPORT_FILE, {"split": "test", "rows": rows})
    if check:
        export_verification.check_rows(rows)
    return paths, rows


def run_config(workdir):
    """The config a run recorded in `workdir/config.json`, completed over base_config().

    Example:
        >>> run_config("runs/quickstart").student.model
        'resnet8'
    """
    from iekd_keras.experiment.config_checks import complete_config

    path = Path(workdir) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"The workdir {str(workdir)!r} holds no run ({str(path)!r} does not exist); "
            "expected the --workdir of a scripts/train.py run."
        )
    return complete_config(json.loads(path.read_text()))


def served_student(workdir, config, data):
    """The model a finished run exports (the IE-KD student, or the DML peer
    `config.mutual.export_peer`), loaded from the run's `workdir` as the run loads it.

    Example:
        >>> config = run_config("runs/quickstart")
        >>> student = served_student("runs/quickstart", config, load_dataset(config.data))
    """
    from iekd_keras.experiment import stages

    stage = next(stage for stage in stages.plan(config) if stage.serves)
    stage_dir = Path(workdir) / stage.name
    summary = stage_dir / stages.SUMMARY
    if not summary.is_file():
        raise FileNotFoundError(
            f"The workdir {str(workdir)!r} has no finished {stage.name} stage "
            f"({str(summary)!r} does not exist); finish the run with scripts/train.py first."
        )
    output, _ = stage.load(config, data, stage_dir, json.loads(summary.read_text()))
    return stage.serves(config, output)


def _write_saved_model(model, path, calibration_images):
    model.export(str(path), format="tf_saved_model", verbose=False)


def _write_litert(model, path, calibration_images):
    import tensorflow as tf

    # Builtin operators only: a file any LiteRT interpreter runs, without the TensorFlow ops.
    model.export(
        str(path),
        format="litert",
        verbose=False,
        target_spec={"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]},
    )


def _write_litert_int8(model, path, calibration_images):
    import tensorflow as tf

    images = np.asarray(calibration_images, dtype="float32")

    def representative_dataset():
        for image in images:
            yield [image[None]]

    # Full integer quantization: int8 weights and activations; the input and output stay
    # float32 (the converter adds the quantize and dequantize steps), so raw images go in.
    model.export(
        str(path),
        format="litert",
        verbose=False,
        optimizations=[tf.lite.Optimize.DEFAULT],
        representative_dataset=representative_dataset,
        target_spec={"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]},
    )


def _write_onnx(model, path, calibration_images):
    with warnings.catch_warnings():
        # Keras's numpy-2 patch of tf2onnx probes np.object, which numpy warns about.
        warnings.simplefilter("ignore", FutureWarning)
        model.export(str(path), format="onnx", verbose=False)


_WRITERS = {
    "saved_model": _write_saved_model,
    "litert": _write_litert,
    "litert_int8": _write_litert_int8,
    "onnx": _write_onnx,
}
