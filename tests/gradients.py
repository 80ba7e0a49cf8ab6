"""Gradients in tests, on whichever Keras backend runs them."""

import keras
import numpy as np

from iekd_keras.distillers.stateless_state import StatelessState


def value_and_gradients(function, variables):
    """`function()` and its gradients with respect to `variables` (keras.Variables).

    A tf.GradientTape on TensorFlow; on JAX, `jax.value_and_grad` with the variables mapped to
    their values (other variables are read as they are). A gradient that does not reach a
    variable is None on TensorFlow and zeros on JAX.

    Example:
        >>> value, (gradient,) = value_and_gradients(lambda: loss(x), [x])
    """
    variables = list(variables)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            value = function()
        return value, tape.gradient(value, variables)
    state = StatelessState([variables], [[variable.value for variable in variables]])

    def loss():
        value = function()
        return value, value

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
