"""Variable values during one stateless (JAX) step: read, differentiate and update by variable.

Keras's JAX trainer hands a step the values of the model's variables as lists (trainable,
non-trainable, optimizer, metrics) and expects the updated lists back. The distillers' loss code
is written against `keras.Variable`s, so it runs inside a `keras.StatelessScope` that maps every
variable to its current value; `StatelessState` keeps those values between the parts of a step
(the forward pass with its gradient, the optimizer update, the metrics).

Example:
    >>> state = StatelessState(
    ...     [model.trainable_variables, model.non_trainable_variables], [trainable, non_trainable]
    ... )
    >>> aux, gradients = state.value_and_grad(lambda: (loss_fn(), None), model.trainable_variables)
    >>> trainable, non_trainable = state.value_lists()
"""

import keras


class StatelessState:
    """The current value of each variable of some variable lists (JAX backend only).

    Args:
        variable_lists: lists of `keras.Variable`s (e.g. a model's trainable variables, its
            non-trainable ones, its optimizer's and its metrics'). A variable in several lists
            must have the same value in each.
        value_lists: the matching lists of values.
    """

    def __init__(self, variable_lists, value_lists):
        self._lists = [list(variables) for variables in variable_lists]
        if len(self._lists) != len(value_lists):
            raise ValueError(
                f"Got {len(self._lists)} variable lists but {len(value_lists)} value lists."
            )
        self._variables = {}
        self._values = {}
        for variables, values in zip(self._lists, value_lists, strict=True):
            values = list(values)
            if len(variables) != len(values):
                raise ValueError(
                    f"Got {len(values)} values for {len(variables)} variables "
                    f"(first variable: {variables[0].path if variables else None!r})."
                )
            for variable, value in zip(variables, values, strict=True):
                self._variables[id(variable)] = variable
                self._values[id(variable)] = value

    def values(self, variables):
        """The current values of `variables`, in order."""
        return [self._values[id(variable)] for variable in variables]

    def value_lists(self):
        """The current values, as lists shaped like the `variable_lists` given."""
        return tuple(self.values(variables) for variables in self._lists)

    def set_values(self, variables, values):
        """Replaces the current values of `variables`."""
        for variable, value in zip(variables, values, strict=True):
            self._values[id(variable)] = value

    def _mapping(self, keys, values):
        return [(self._variables[key], value) for key, value in zip(keys, values, strict=True)]

    def run(self, function):
        """Calls `function()` with every variable at its current value; keeps its assignments."""
        keys = list(self._variables)
        with keras.StatelessScope(state_mapping=self._mapping(keys, self.values_by_key(keys))) as s:
            result = function()
        self._collect(s, keys)
        return result

    def values_by_key(self, keys):
        return [self._values[key] for key in keys]

    def _collect(self, scope, keys):
        for key in keys:
            updated = scope.get_current_value(self._variables[key])
            if updated is not None:
                self._values[key] = updated

    def value_and_grad(self, function, variables):
        """Gradients of a loss with respect to `variables`, from their current values.

        `function()` returns `(loss, aux)` and runs with every variable at its current value.
        The assignments it makes to other variables (BatchNorm moving statistics, memory banks,
        seed states) are kept; assigning to one of `variables` is an error. Returns
        `(aux, gradients)`, the gradients in the order of `variables`.
        """
        import jax

        differentiated = [id(variable) for variable in variables]
        if len(set(differentiated)) != len(differentiated):
            raise ValueError("value_and_grad got the same variable twice.")
        chosen = set(differentiated)
        others = [key for key in self._variables if key not in chosen]

        def forward(values, other_values):
            mapping = self._mapping(differentiated, values) + self._mapping(others, other_values)
            with keras.StatelessScope(state_mapping=mapping) as scope:
                loss, aux = function()
            for key, value in zip(differentiated, values, strict=True):
                if scope.get_current_value(self._variables[key]) is not value:
                    raise ValueError(
                        f"The loss assigned to {self._variables[key].path!r}, a variable it is "
                        "differentiated with respect to."
                    )
            updated = []
            for key, value in zip(others, other_values, strict=True):
                current = scope.get_current_value(self._variables[key])
                updated.append(value if current is None else current)
            return loss, (aux, updated)

        gradient_fn = jax.value_and_grad(forward, has_aux=True)
        (_, (aux, updated)), gradients = gradient_fn(
            self.values_by_key(differentiated), self.values_by_key(others)
        )
        self._values.update(zip(others, updated, strict=True))
        return aux, gradients
