"""Private helpers shared by the distillation terms of `iekd_keras.losses`.

Every term follows the extra-term protocol of `iekd_keras.Distiller`: it has a string `name`, is
called as `term(teacher_outputs, student_outputs, batch)` and returns its weighted value as this
replica's share (see `iekd_keras.distribute.replicas`). Terms with variables derive from
`TermLayer`.
"""

import keras
from keras import ops

from iekd_keras.losses import weights as loss_weights


def check_positive(term, name, value):
    """A positive number, as a float."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{term}: {name}={value!r} must be a positive number.")
    return float(value)


def check_count(term, name, value, minimum=1):
    """An integer of at least `minimum`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{term}: {name}={value!r} must be an integer >= {minimum}.")
    return int(value)


def weight_now(weight, batch):
    """The weight (a number or a schedule of the step) at this batch's optimizer step."""
    return loss_weights.loss_weight_at(weight, batch.get("step", 0))


def lookup(outputs, key, role, term):
    """`outputs[key]`, or a ValueError that lists the outputs the model does have."""
    if key not in outputs:
        raise ValueError(
            f"{term}: the {role} has no output named {key!r}; its outputs are "
            f"{sorted(outputs)}. Expose intermediate feature maps with "
            "iekd_keras.models.with_taps(model, [...]) (the backbones name theirs "
            "'stage1', 'stage2', ...)."
        )
    return outputs[key]


def feature_map_shape(shapes, key, role, term):
    """The (batch, height, width, channels) shape of a named output, checked."""
    shape = tuple(lookup(shapes, key, role, term))
    if len(shape) != 4 or None in shape[1:]:
        raise ValueError(
            f"{term}: the {role} output {key!r} has shape {shape}; expected a channels-last "
            "feature map (batch, height, width, channels) with known height, width and channels."
        )
    return shape


def l2_normalize_rows(x):
    """Each row of a (batch, dim) tensor scaled to unit L2 norm: x / max(||x||, 1e-12).

    Written as x * rsqrt(max(sum(x^2), 1e-24)), which keeps the gradient of an all-zero row
    finite on every backend.
    """
    squared_norm = ops.sum(ops.square(x), axis=-1, keepdims=True)
    return x * ops.rsqrt(ops.maximum(squared_norm, 1e-24))


class BatchContext:
    """A read-only view of the Distiller's `batch` dict that Keras does not look inside.

    `Layer.__call__` inspects nested positional arguments and refuses a dict mixing tensors
    with non-tensors (e.g. label tensors with an int step, or None indices), so `TermLayer`
    hands its `call` this opaque view instead, with the same `get` and `[]`.
    """

    __slots__ = ("_values",)

    def __init__(self, values):
        self._values = values._values if isinstance(values, BatchContext) else dict(values)

    def get(self, key, default=None):
        return self._values.get(key, default)

    def __getitem__(self, key):
        return self._values[key]

    def __contains__(self, key):
        return key in self._values


class TermLayer(keras.layers.Layer):
    """Base of the terms that hold variables: a float32 Keras layer with a two-dict build.

    `build(teacher_shapes, student_shapes)` takes the dicts of output shapes by name and
    creates every variable; the Distiller calls it in its `__init__`, so the optimizer sees them.
    The layer is called as `term(teacher_outputs, student_outputs, batch, training=None)`;
    `call` gets `batch` as a read-only `BatchContext` (same `get` and `[]`). When
    `training` is None it is read from `batch["training"]`, and is True if that is absent too
    (the Distiller runs its extra terms in training steps, and in evaluation only with
    `teacher_in_evaluation=True`).
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        # Called with dicts of tensors and a batch context holding ints and None.
        self._allow_non_tensor_positional_args = True
        self._convert_input_args = False

    def __call__(self, teacher_outputs, student_outputs, batch, **kwargs):
        if not self.built:
            raise RuntimeError(
                f"{self.name}: call build(teacher_shapes, student_shapes) first, with the dicts "
                "of output shapes by name (the Distiller does it when it is created)."
            )
        return super().__call__(teacher_outputs, student_outputs, BatchContext(batch), **kwargs)

    @staticmethod
    def resolve_training(batch, training):
        if training is not None:
            return bool(training)
        return bool(batch.get("training", True))
