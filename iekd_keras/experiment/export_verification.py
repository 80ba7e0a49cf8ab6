"""Verification of exported models: each file run in its own runtime (TensorFlow for the
SavedModel, the LiteRT interpreter, ONNX Runtime) on a dataset split, compared with the Keras
model it was exported from; the report's rows and table.

A float export must give the Keras model's probabilities within FLOAT_TOLERANCE (max abs
difference); the int8 export's top-1 test accuracy must lie within INT8_ACCURACY_TOLERANCE of
the Keras model's, and its top-1 must agree with the Keras model's on at least
MIN_INT8_AGREEMENT of the images.
"""

import dataclasses
import time
import warnings
from pathlib import Path

import numpy as np

FLOAT_TOLERANCE = 1e-4
INT8_ACCURACY_TOLERANCE = 0.01  # one point
MIN_INT8_AGREEMENT = 0.9
# Latency: median over LATENCY_IMAGES test images run one at a time, after LATENCY_WARMUP.
LATENCY_IMAGES = 50
LATENCY_WARMUP = 5
# The row of the Keras model the exports are compared with; its file is the .keras student.
REFERENCE = "keras"
INT8_FORMATS = ("litert_int8",)


class ExportMismatch(ValueError):
    """An exported file that does not reproduce the Keras model it was exported from."""


def raw_batches(data, split, batch_size):
    """(raw images as float32 0-255, labels) batches of `split`, in the dataset's fixed order.

    In-memory datasets (`ImageData`) give their stored images; others (tf.data, ImageNet)
    their unaugmented evaluation batches with the normalisation undone.

    Example:
        >>> images, labels = next(raw_batches(load_digits(16), "test", 64))
        >>> images.shape, float(images.max()) <= 255
        ((64, 16, 16, 1), True)
    """
    images = getattr(data, f"{split}_images", None)
    if images is not None:
        labels = getattr(data, f"{split}_labels")
        for start in range(0, len(images), batch_size):
            stop = start + batch_size
            yield np.asarray(images[start:stop], "float32"), np.asarray(labels[start:stop])
        return
    mean, std = np.asarray(data.mean, "float32"), np.asarray(data.std, "float32")
    for normalised, labels in data.evaluation_dataset(batch_size, split):
        yield (np.asarray(normalised) * std + mean) * 255.0, np.asarray(labels)


def calibration_images(data, split, count, seed=0):
    """`count` raw images of `split` for int8 calibration (fewer if the split is smaller),
    float32 0-255: a seeded random sample of an in-memory split (whose stored order may run
    class by class, as an image folder's does), else the first `count` of its evaluation order.

    Example:
        >>> calibration_images(load_digits(16), "train", 256).shape
        (256, 16, 16, 1)
    """
    images = getattr(data, f"{split}_images", None)
    if images is not None:
        chosen = np.random.default_rng(seed).permutation(len(images))[:count]
        return np.asarray(images, "float32")[np.sort(chosen)]
    taken, total = [], 0
    for batch, _ in raw_batches(data, split, min(count, 256)):
        taken.append(batch[: count - total])
        total += len(taken[-1])
        if total >= count:
            break
    return np.concatenate(taken)


def open_runtime(kind, path):
    """A function running the exported file `path` in the runtime of its format `kind`:
    raw images (count, height, width, channels) float32 -> probabilities (count, classes).

    LiteRT files run in ai-edge-litert's interpreter when it is installed, else in
    TensorFlow's `tf.lite.Interpreter`.

    Example:
        >>> run = open_runtime("litert", "runs/quickstart/export/student.tflite")
        >>> run(np.zeros((2, 16, 16, 1), "float32")).shape
        (2, 10)
    """
    if kind not in _OPENERS:
        raise ValueError(
            f"No runtime for the export format {kind!r}; expected one of {list(_OPENERS)}."
        )
    return _OPENERS[kind](Path(path))


def _saved_model_runtime(path):
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    serve = loaded.signatures["serve"]
    (input_name,) = serve.structured_input_signature[1]

    def run(images):
        (probabilities,) = serve(**{input_name: tf.constant(images)}).values()
        return probabilities.numpy()

    run.loaded = loaded  # the signature needs the loaded object (its variables) alive
    return run


def _litert_interpreter(path):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's notice that LiteRT replaces it
        return Interpreter(model_path=str(path))


def _litert_runtime(path):
    interpreter = _litert_interpreter(path)
    (source,) = interpreter.get_input_details()
    (result,) = interpreter.get_output_details()
    interpreter.allocate_tensors()

    def run(images):
        if tuple(interpreter.get_input_details()[0]["shape"]) != images.shape:
            interpreter.resize_tensor_input(source["index"], images.shape)
            interpreter.allocate_tensors()
        interpreter.set_tensor(source["index"], images)
        interpreter.invoke()
        return interpreter.get_tensor(result["index"]).copy()

    return run


def _onnx_runtime(path):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    return lambda images: session.run(None, {input_name: images})[0]


_OPENERS = {
    "saved_model": _saved_model_runtime,
    "litert": _litert_runtime,
    "litert_int8": _litert_runtime,
    "onnx": _onnx_runtime,
}


@dataclasses.dataclass
class _Tally:
    """One runtime's running comparison with the Keras model."""

    run: object
    count: int = 0
    correct: int = 0
    agreeing: int = 0
    max_difference: float = 0.0
    failure: str | None = None

    def add(self, images, expected, labels, probabilities=None):
        """Tallies one batch; `probabilities` are this runtime's answer when already computed."""
        if self.failure:
            return
        try:
            if probabilities is None:
                probabilities = np.asarray(self.run(images), "float32")
        except Exception as error:  # noqa: BLE001 - any runtime failure is the file's verdict
            self.failure = (
                f"it fails to run on the test images ({type(error).__name__}: "
                f"{' '.join(str(error).split())[:200]})"
            )
            return
        if probabilities.shape != expected.shape:
            self.failure = (
                f"it returns an array of shape {probabilities.shape} for a batch the Keras model "
                f"answers with {expected.shape}"
            )
            return
        predicted = probabilities.argmax(axis=1)
        difference = float(np.max(np.abs(probabilities - expected)))
        # `>` is False against a NaN, so a NaN, once seen, stays.
        if np.isnan(difference) or difference > self.max_difference:
            self.max_difference = difference
        self.count += len(labels)
        self.correct += int(np.sum(predicted == labels))
        self.agreeing += int(np.sum(predicted == expected.argmax(axis=1)))


def verify_exports(model, paths, batches):
    """Runs every exported file and the Keras model on the same images and checks each file.

    Args:
        model: the Keras serving model (raw images -> probabilities) the files hold.
        paths: format -> path, as `export.export_student` returns them; the "keras" entry (the
            two-output student file) only names the reference row's file.
        batches: a function returning an iterable of (raw images, labels) batches, e.g. the
            test split's (`raw_batches`).

    Returns:
        One row per format, the Keras model's first: format, file, size_bytes, test_accuracy,
        max_abs_prob_diff and top1_agreement (with the Keras model), median_latency_ms
        (batch 1), verified (None for the reference) and problem (why it failed, else None).

    Example:
        >>> rows = verify_exports(serving, paths, lambda: raw_batches(data, "test", 256))
        >>> [row["verified"] for row in rows]
        [None, True, True]
    """
    # predict_on_batch: the compiled inference step (a tf.function, or jitted on JAX).
    reference = _Tally(lambda images: np.asarray(model.predict_on_batch(images)))
    tallies = {REFERENCE: reference}
    tallies.update(
        {
            kind: _Tally(open_runtime(kind, path))
            for kind, path in paths.items()
            if kind != REFERENCE
        }
    )
    timed = []
    for images, labels in batches():
        images = np.ascontiguousarray(images, dtype="float32")
        labels = np.asarray(labels).reshape(-1)
        timed.extend(images[: max(0, LATENCY_IMAGES - len(timed))])
        expected = np.asarray(reference.run(images), "float32")
        for kind, tally in tallies.items():
            tally.add(images, expected, labels, expected if kind == REFERENCE else None)
    if not reference.count:
        raise ValueError("The verification got no images: the test split is empty.")
    rows = []
    for kind, tally in tallies.items():
        path = paths.get(kind)
        row = {
            "format": kind,
            "file": Path(path).name if path is not None else None,
            "size_bytes": file_size(path) if path is not None else None,
            "test_accuracy": tally.correct / tally.count if tally.count else None,
            "max_abs_prob_diff": None if kind == REFERENCE else tally.max_difference,
            "top1_agreement": None if kind == REFERENCE else _ratio(tally.agreeing, tally.count),
            "median_latency_ms": None if tally.failure else median_latency_ms(tally.run, timed),
        }
        problem = tally.failure or _problem(kind, row, reference.correct / reference.count)
        row["verified"] = None if kind == REFERENCE else problem is None
        row["problem"] = problem
        rows.append(row)
    return rows


def _ratio(part, whole):
    return part / whole if whole else None


def _problem(kind, row, reference_accuracy):
    """Why the row's file fails its check, or None."""
    if kind == REFERENCE:
        return None
    if kind in INT8_FORMATS:
        gap = abs(row["test_accuracy"] - reference_accuracy)
        if gap > INT8_ACCURACY_TOLERANCE + 1e-9:
            return (
                f"its test accuracy {row['test_accuracy']:.2%} is {100 * gap:.2f} points from "
                f"the Keras model's {reference_accuracy:.2%}; expected within "
                f"{100 * INT8_ACCURACY_TOLERANCE:g} point"
            )
        if row["top1_agreement"] < MIN_INT8_AGREEMENT:
            return (
                f"its top-1 agrees with the Keras model's on {row['top1_agreement']:.2%} of the "
                f"test images; expected at least {MIN_INT8_AGREEMENT:.0%}"
            )
        return None
    if not row["max_abs_prob_diff"] <= FLOAT_TOLERANCE:  # also refuses NaN
        return (
            f"its probabilities differ from the Keras model's by up to "
            f"{row['max_abs_prob_diff']:.3g}; expected at most {FLOAT_TOLERANCE:g}"
        )
    return None


def check_rows(rows):
    """Raises ExportMismatch naming every file that failed its verification, with why.

    Example:
        >>> check_rows(verify_exports(serving, paths, batches))  # all verified: no error
    """
    failed = [row for row in rows if row["verified"] is False]
    if failed:
        reasons = "; ".join(f"{row['format']} ({row['file']}): {row['problem']}" for row in failed)
        raise ExportMismatch(f"The export fails its verification on the test split: {reasons}.")


def median_latency_ms(run, images):
    """Median milliseconds of `run` on one image at a time (batch 1), after a warm-up.

    Example:
        >>> median_latency_ms(open_runtime("onnx", "export/student.onnx"), test_images[:50])
        0.21
    """
    if not len(images):
        return None
    for image in images[:LATENCY_WARMUP]:
        run(image[None])
    times = []
    for image in images:
        started = time.perf_counter()
        run(image[None])
        times.append(time.perf_counter() - started)
    return 1000.0 * float(np.median(times))


def file_size(path):
    """Bytes of a file, or of every file under a directory (a SavedModel).

    Example:
        >>> file_size("runs/quickstart/export/student.tflite")
        318740
    """
    path = Path(path)
    if path.is_dir():
        return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())
    return path.stat().st_size


def format_table(rows):
    """The report as a Markdown table (it reads as plain text too).

    Example:
        >>> print(format_table(rows))
        | format | file | size | test accuracy | max abs prob diff | top-1 agreement | ...
    """
    header = (
        "| format | file | size | test accuracy | max abs prob diff vs Keras | "
        "top-1 agreement with Keras | median latency, batch 1 | verified |"
    )
    lines = [header, "|" + "---|" * header.count(" | ") + "---|"]
    for row in rows:
        cells = [
            row["format"],
            f"`{row['file']}`" if row["file"] else "-",
            _size_text(row["size_bytes"]),
            _percent(row["test_accuracy"]),
            "-" if row["max_abs_prob_diff"] is None else f"{row['max_abs_prob_diff']:.1e}",
            _percent(row["top1_agreement"]),
            "-" if row["median_latency_ms"] is None else f"{row['median_latency_ms']:.2f} ms",
            {None: "reference", True: "yes", False: "NO"}[row["verified"]],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _percent(value):
    return "-" if value is None else f"{100 * value:.2f}%"


def _size_text(size):
    if size is None:
        return "-"
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.2f} MiB"
    return f"{size / 1024:.1f} KiB"
