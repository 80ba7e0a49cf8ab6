"""Export of the bare student for serving: a TensorFlow SavedModel and a .keras file."""

from pathlib import Path

import keras

from iekd_keras.distribute.batchnorm_sync import saved_without_sync


def serving_model(student, mean, std, name="serving_student"):
    """Raw images (pixel values 0-255) -> normalisation -> student -> class probabilities.

    Only the student's logits path is kept: no teacher, no factor encoders.
    """
    inputs = keras.Input(student.inputs[0].shape[1:], name="images")
    variance = [s * s for s in std]
    x = keras.layers.Rescaling(1.0 / 255.0, name="to_unit_range")(inputs)
    x = keras.layers.Normalization(mean=list(mean), variance=variance, name="normalize")(x)
    logits = student(x, training=False)[0]
    probabilities = keras.layers.Softmax(name="probabilities", dtype="float32")(logits)
    return keras.Model(inputs, probabilities, name=name)


def export_student(student, directory, mean, std):
    """Writes `directory/saved_model` (signature `serve`: images -> probabilities) and
    `directory/student.keras` (the two-output student itself, for further training).

    Args:
        student: the trained (logits, features) model, e.g. `distiller.student`.
        directory: output directory (created).
        mean, std: the per-channel normalisation of the training data, on the 0-1 scale.

    Returns:
        dict with the paths of the `saved_model` directory and the `keras` file.

    Example:
        >>> export_student(distiller.student, "export", data.mean, data.std)
        >>> served = tf.saved_model.load("export/saved_model").signatures["serve"]
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    saved_model = directory / "saved_model"
    model = serving_model(student, mean, std)
    keras_file = directory / "student.keras"
    with saved_without_sync(model):
        model.export(str(saved_model), format="tf_saved_model", verbose=False)
        student.save(keras_file)
    return {"saved_model": saved_model, "keras": keras_file}
