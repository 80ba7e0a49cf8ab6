"""Loading saved models and evaluating them on a dataset split."""

import zipfile
from pathlib import Path

import keras

from iekd_keras.data import load_dataset
from iekd_keras.distillers import StandaloneTrainer
from iekd_keras.distillers.model_checks import two_output_shapes


def load_two_output_model(path, role):
    """Loads a `.keras` model returning `[logits, features]`, with errors that name the file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"The {role} checkpoint {str(path)!r} does not exist.")
    try:
        model = keras.saving.load_model(path, compile=False)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        raise ValueError(
            f"The {role} checkpoint {str(path)!r} cannot be read: it is truncated, corrupted or "
            f"not a Keras .keras file ({type(error).__name__}: {error})."
        ) from error
    two_output_shapes(model, f"{role} loaded from {str(path)!r},")
    return model


def evaluate_checkpoint(path, config, split="test"):
    """Top-1 accuracy and cross-entropy of a saved model on `split` of `config.data`.

    The train split is evaluated without augmentation.
    """
    model = load_two_output_model(path, "model")
    data = load_dataset(config.data)
    dataset = data.evaluation_dataset(config.eval_batch_size, split)
    trainer = StandaloneTrainer(model).compile(metrics=["accuracy"])
    logs = trainer.evaluate(dataset, verbose=0, return_dict=True)
    return {"checkpoint": str(path), "split": split, **{k: float(v) for k, v in logs.items()}}
