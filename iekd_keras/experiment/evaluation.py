"""Loading saved models and evaluating them on a dataset split."""

import zipfile
from pathlib import Path

import keras

from iekd_keras.data import load_dataset
from iekd_keras.distillers import StandaloneTrainer
from iekd_keras.distillers.model_checks import two_output_shapes
from iekd_keras.experiment.config_checks import complete_config

# Suffixes Keras reads as legacy HDF5 files rather than .keras zip archives.
LEGACY_SUFFIXES = (".h5", ".hdf5")
ZIP_SIGNATURE = b"PK\x03\x04"


def load_two_output_model(path, role):
    """Loads a `.keras` model returning `[logits, features]`; every failure is one sentence
    naming the file and what is wrong with it (missing, not a zip archive, truncated, not a
    Keras model, unloadable, wrong outputs).

    Example:
        >>> student = load_two_output_model("runs/quickstart/student/best.keras", "student")
    """
    model = load_keras_file(path, role)
    two_output_shapes(model, f"{role} loaded from {str(path)!r},")
    return model


def load_keras_file(path, role):
    """Loads any Keras model file; every failure is one sentence naming the file and what is
    wrong with it (missing, not a zip archive, truncated, not a Keras model, unloadable).

    Example:
        >>> classifier = load_keras_file("my_classifier.keras", "teacher")
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"The {role} checkpoint {str(path)!r} does not exist.")
    if path.is_dir():
        raise IsADirectoryError(
            f"The {role} checkpoint {str(path)!r} is a directory; expected a .keras file."
        )
    problem = None if path.suffix in LEGACY_SUFFIXES else keras_file_problem(path)
    if problem:
        raise ValueError(f"The {role} checkpoint {str(path)!r} cannot be read: {problem}.")
    try:
        model = keras.saving.load_model(path, compile=False)
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as error:
        detail = " ".join(str(error).split())
        raise ValueError(
            f"The {role} checkpoint {str(path)!r} cannot be read: Keras fails to load it "
            f"({type(error).__name__}: {detail})."
        ) from error
    return model


def keras_file_problem(path):
    """What makes `path` unreadable as a `.keras` file (a zip archive holding config.json),
    or None when it looks like one.

    Example:
        >>> keras_file_problem("notes.txt")
        "it is not a Keras .keras file (those are zip archives; this one starts with b'Some')"
    """
    with open(path, "rb") as file:
        head = file.read(len(ZIP_SIGNATURE))
    if not head:
        return "it is empty (0 bytes)"
    if not zipfile.is_zipfile(path):
        if head == ZIP_SIGNATURE:
            return (
                "it is truncated, corrupted or still being written: it starts as a zip "
                "archive but its end (the zip directory) is missing"
            )
        return (
            f"it is not a Keras .keras file (those are zip archives; this one starts with {head!r})"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        return f"it is a damaged zip archive ({error})"
    if "config.json" not in names:
        shown = ", ".join(repr(name) for name in names[:3]) or "nothing"
        more = f" and {len(names) - 3} more" if len(names) > 3 else ""
        return f"it is a zip archive but not a Keras model (no config.json; it holds {shown}{more})"
    if damaged:
        return f"it is corrupted: its member {damaged!r} fails the zip checksum"
    return None


def evaluate_accuracy(model, data, batch_size):
    """Top-1 accuracy of a (logits, features) model on the test split of `data`.

    Example:
        >>> evaluate_accuracy(load_two_output_model("teacher.keras", "teacher"), data, 256)
        0.9721
    """
    trainer = StandaloneTrainer(model).compile(metrics=["accuracy"])
    logs = trainer.evaluate(data.test_dataset(batch_size), verbose=0, return_dict=True)
    return float(logs["accuracy"])


def evaluate_checkpoint(path, config, split="test"):
    """Top-1 accuracy and cross-entropy of a saved model on `split` of `config.data` (a key
    the config leaves out takes base_config()'s value).

    The train split is evaluated without augmentation.
    """
    config = complete_config(config)
    model = load_two_output_model(path, "model")
    data = load_dataset(config.data)
    dataset = data.evaluation_dataset(config.eval_batch_size, split)
    trainer = StandaloneTrainer(model).compile(metrics=["accuracy"])
    logs = trainer.evaluate(dataset, verbose=0, return_dict=True)
    return {"checkpoint": str(path), "split": split, **{k: float(v) for k, v in logs.items()}}
