"""Gradients in tests, on whichever Keras backend runs them, by the trainers' own primitives."""

import keras
import numpy as np

from iekd_keras.distillers.stateless_state import StatelessState
from iekd_keras.distillers.term_model import tape_value_and_grad


def value_and_gradients(function, variables):
    """`function()` and its gradients with respect to `variables` (keras.Variables).

    The trainers' gradient primitives: `tape_value_and_grad` on TensorFlow,
    `StatelessState.value_and_grad` on JAX, with the variables mapped to their values (other
    variables are read as they are). A gradient that does not reach a variable is None on
    TensorFlow and zeros on JAX.

    Example:
        >>> value, (gradient,) = value_and_gradients(lambda: loss(x), [x])
    """
    variables = list(variables)

    def loss():
        value = function()
        return value, value

    if keras.backend.backend() == "tensorflow":
        value, gradients = tape_value_and_grad(loss, variables)
    else:
        state = StatelessState([variables], [[variable.value for variable in variables]])
        value, gradients = state.value_and_grad(loss, variables)
    return value, list(gradients)


def gradient_norms(function, variables):
    """`function()` and the L2 norm of its gradient for each variable (0 where none)."""
    value, gradients = value_and_gradients(function, variables)
    norms = [
        0.0 if g is None else float(np.linalg.norm(np.ravel(keras.ops.convert_to_numpy(g))))
        for g in gradients
    ]
    return value, norms
