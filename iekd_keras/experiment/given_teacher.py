"""A teacher of your own: a plain Keras classifier (one output, logits or probabilities) turned
into the [logits, features] teacher the distillers take.

    --config.teacher.checkpoint=my.keras --config.teacher.preprocessing=unit

The classifier sees the images as it was trained to (`config.teacher.preprocessing`), its
probabilities become logits (their log: softmax(log p / T) is p sharpened or softened by T, as
the logits would give), and its feature map is the output of `config.teacher.feature_layer`,
or, when that is empty, the input of its global pooling (printed).
"""

import difflib

import keras

from iekd_keras.distillers.model_checks import two_output_shapes
from iekd_keras.models import with_feature_output

# "dataset": the dataset's normalisation (what the students see); "unit": pixels / 255;
# "symmetric": pixels / 127.5 - 1; "raw": pixels 0-255; else keras.applications.<family>'s
# preprocess_input on the raw pixels.
APPLICATION_FAMILIES = (
    "convnext",
    "densenet",
    "efficientnet",
    "efficientnet_v2",
    "inception_resnet_v2",
    "inception_v3",
    "mobilenet",
    "mobilenet_v2",
    "mobilenet_v3",
    "nasnet",
    "resnet",
    "resnet50",
    "resnet_v2",
    "vgg16",
    "vgg19",
    "xception",
)
PREPROCESSING = ("dataset", "unit", "symmetric", "raw", *APPLICATION_FAMILIES)
POOLING_TYPES = (
    keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalMaxPooling2D,
    keras.layers.Flatten,
)
# The least probability whose log is taken (a softmax that underflowed to 0).
SMALLEST_PROBABILITY = 1e-30


@keras.saving.register_keras_serializable(package="iekd_keras")
class TeacherPreprocessing(keras.layers.Layer):
    """Dataset-normalised images -> the input a given teacher was trained on.

    Args:
        mean, std: the dataset's per-channel normalisation, on the 0-1 scale.
        preprocessing: one of PREPROCESSING.

    Example:
        >>> TeacherPreprocessing((0.5,), (0.25,), "unit")(keras.ops.zeros((1, 2, 2, 1)))
        # 0.5 everywhere: the normalised 0 is the mean pixel
    """

    def __init__(self, mean, std, preprocessing, **kwargs):
        super().__init__(**kwargs)
        if preprocessing not in PREPROCESSING:
            raise ValueError(
                f"preprocessing={preprocessing!r} is not a teacher preprocessing; expected one "
                f"of {', '.join(PREPROCESSING)}."
            )
        self.mean, self.std = [float(m) for m in mean], [float(s) for s in std]
        self.preprocessing = preprocessing

    def call(self, images):
        if self.preprocessing == "dataset":
            return images
        mean = keras.ops.convert_to_tensor(list(self.mean), images.dtype)
        std = keras.ops.convert_to_tensor(list(self.std), images.dtype)
        pixels = (images * std + mean) * 255.0
        if self.preprocessing == "raw":
            return pixels
        if self.preprocessing == "unit":
            return pixels / 255.0
        if self.preprocessing == "symmetric":
            return pixels / 127.5 - 1.0
        family = getattr(keras.applications, self.preprocessing)
        return family.preprocess_input(pixels)

    def get_config(self):
        return {
            **super().get_config(),
            "mean": list(self.mean),
            "std": list(self.std),
            "preprocessing": self.preprocessing,
        }


@keras.saving.register_keras_serializable(package="iekd_keras")
class ProbabilityLogits(keras.layers.Layer):
    """Class probabilities -> logits (their log; any per-example constant is lost, which no
    softmax sees).

    Example:
        >>> ProbabilityLogits()(keras.ops.array([[0.5, 0.5]]))  # [[-0.693, -0.693]]
    """

    def call(self, probabilities):
        probabilities = keras.ops.cast(probabilities, "float32")
        return keras.ops.log(keras.ops.maximum(probabilities, SMALLEST_PROBABILITY))


def load_teacher(path, teacher_config, data):
    """The teacher of `config.teacher.checkpoint`: a [logits, features] model as saved, or a
    plain one-output classifier adapted by `as_two_output_teacher`.

    Example:
        >>> teacher = load_teacher("my_classifier.keras", config.teacher, data)
    """
    from iekd_keras.experiment.evaluation import load_keras_file  # it imports the checks

    model = load_keras_file(path, "teacher")
    if len(getattr(model, "outputs", None) or ()) >= 2:
        two_output_shapes(model, f"teacher loaded from {str(path)!r},")
        if teacher_config.feature_layer or teacher_config.preprocessing != "dataset":
            raise ValueError(
                "config.teacher.feature_layer and config.teacher.preprocessing apply to a plain "
                f"one-output classifier; the teacher {str(path)!r} returns [logits, features] "
                "already, on the dataset's normalisation: leave them at '' and 'dataset'."
            )
        return model
    return as_two_output_teacher(
        model, data, teacher_config.feature_layer, teacher_config.preprocessing
    )


def as_two_output_teacher(model, data, feature_layer="", preprocessing="dataset"):
    """A plain Keras classifier as a teacher: dataset-normalised images in, [logits, features]
    out, in one pass through the classifier's own layers (nothing copied).

    Args:
        model: a functional (or built Sequential) model with one output, logits or
            probabilities (a softmax at its end: its log is taken).
        data: the dataset (its normalisation and image shape).
        feature_layer: the layer whose output is the feature map; "" finds the input of the
            model's global pooling (or the last 4-D output), and prints it.
        preprocessing: what the classifier expects, one of PREPROCESSING.

    Example:
        >>> teacher = as_two_output_teacher(keras.saving.load_model("mine.keras"), data,
        ...                                 preprocessing="unit")
    """
    outputs = getattr(model, "outputs", None) or ()
    if len(outputs) != 1 or len(outputs[0].shape) != 2:
        shapes = [tuple(output.shape) for output in outputs]
        raise ValueError(
            f"The teacher {model.name!r} returns {shapes or 'no symbolic outputs'}; expected a "
            "functional classifier with one output of shape (batch, classes)."
        )
    _check_input_shape(model, data)
    name = feature_layer or _pooled_feature_layer(model)
    _check_feature_layer(model, name)
    if not feature_layer:
        shape = tuple(model.get_layer(name).output.shape[1:])
        print(
            f"The teacher {model.name!r} gives its features from layer {name!r} {shape} "
            "(config.teacher.feature_layer chooses another)."
        )
    tapped = with_feature_output(model, name)
    images = keras.Input(data.input_shape, name="images")
    x = TeacherPreprocessing(data.mean, data.std, preprocessing, name="teacher_preprocessing")(
        images
    )
    scores, features = tapped(x)
    logits = ProbabilityLogits(name="logits")(scores) if gives_probabilities(model) else scores
    return keras.Model(images, [logits, features], name=f"{model.name}_teacher")


def gives_probabilities(model):
    """Whether the model's one output comes out of a softmax.

    Example:
        >>> gives_probabilities(keras.applications.ResNet50(weights=None))
        True
    """
    layer = model.outputs[0]._keras_history.operation
    if isinstance(layer, keras.layers.Softmax):
        return True
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", None) == "softmax"


def _pooled_feature_layer(model):
    """The layer feeding the model's last global pooling (or Flatten); else the last layer with
    a 4-D output."""
    for layer in reversed(model.layers):
        if isinstance(layer, POOLING_TYPES):
            source = layer.input._keras_history.operation
            if (
                isinstance(source, keras.layers.Layer)
                and not isinstance(source, keras.layers.InputLayer)
                and len(source.output.shape) == 4
            ):
                return source.name
    spatial = _spatial_layers(model)
    if not spatial:
        raise ValueError(
            f"The teacher {model.name!r} has no layer with a 4-D output (batch, height, width, "
            "channels) to give features; expected a convolutional classifier."
        )
    return spatial[-1]


def _spatial_layers(model):
    names = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        try:
            if len(layer.output.shape) == 4:
                names.append(layer.name)
        except (AttributeError, ValueError):
            continue
    return names


def _check_feature_layer(model, name):
    spatial = _spatial_layers(model)
    names = [layer.name for layer in model.layers]
    if name not in names:
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"config.teacher.feature_layer={name!r} is not a layer of the teacher "
            f"{model.name!r}.{hint} Its layers with a 4-D output are: {spatial}."
        )
    if name not in spatial:
        shape = tuple(model.get_layer(name).output.shape)
        raise ValueError(
            f"config.teacher.feature_layer={name!r} has output shape {shape}; expected a 4-D "
            f"feature map (batch, height, width, channels). The teacher {model.name!r}'s layers "
            f"with a 4-D output are: {spatial}."
        )


def _check_input_shape(model, data):
    takes, given = tuple(model.inputs[0].shape[1:]), tuple(data.input_shape)
    fits = len(takes) == len(given) and all(
        t is None or t == g for t, g in zip(takes, given, strict=True)
    )
    if not fits:
        raise ValueError(
            f"The teacher {model.name!r} takes images of shape {takes} but the dataset "
            f"{data.name!r} gives {given}; expected a classifier for these images."
        )
