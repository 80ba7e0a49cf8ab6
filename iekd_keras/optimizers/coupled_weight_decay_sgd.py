"""SGD that updates exactly as PyTorch's `torch.optim.SGD(momentum, nesterov, weight_decay)`."""

import keras
from keras import ops

# Version of the optimizer state. Version 1 (before it was recorded) kept Keras's velocity, which
# has the learning rate inside it; version 2 keeps PyTorch's learning-rate-free momentum buffer.
STATE_FORMAT = 2


@keras.saving.register_keras_serializable(package="iekd_keras")
class CoupledWeightDecaySGD(keras.optimizers.Optimizer):
    """PyTorch's SGD step for step, with coupled L2 weight decay on every trainable variable.

    Per variable `w` with gradient `grad` and the step's learning rate `lr`:

        g = grad + l2_decay * w
        buffer = momentum * buffer + g           (buffer starts at 0, so its first value is g)
        d = g + momentum * buffer if nesterov else buffer
        w = w - lr * d

    The momentum buffer holds no learning rate, as PyTorch's does, so a learning-rate drop takes
    effect at the next step. Keras's own SGD keeps `lr * g` in its velocity and would move at the
    old rate for some steps after each drop. The decay is PyTorch's `weight_decay` (added to the
    gradient before momentum), not Keras's decoupled `weight_decay=`; it lives in the optimizer so
    that it is applied once per step under a distribution strategy and stays out of the loss.

    The optimizer also saves a scalar `state_format` variable, so that loading a state saved
    before the buffer became learning-rate-free is refused instead of resumed wrongly.

    Args:
        learning_rate: float or schedule.
        momentum: in [0, 1] (default 0.9).
        nesterov: Nesterov momentum (default True).
        l2_decay: coefficient of the coupled L2 term, >= 0 (default 5e-4).
        **kwargs: any other `keras.optimizers.Optimizer` argument.

    Example:
        >>> optimizer = CoupledWeightDecaySGD(learning_rate=0.1, l2_decay=5e-4)
    """

    def __init__(self, learning_rate=0.1, momentum=0.9, nesterov=True, l2_decay=5e-4, **kwargs):
        if kwargs.get("weight_decay"):
            raise ValueError(
                f"weight_decay={kwargs['weight_decay']!r} is Keras's decoupled decay; "
                "CoupledWeightDecaySGD takes the coupled (PyTorch) coefficient as `l2_decay`."
            )
        if not l2_decay >= 0:
            raise ValueError(f"l2_decay={l2_decay!r} must be a non-negative number.")
        if not (isinstance(momentum, int | float) and 0 <= momentum <= 1):
            raise ValueError(f"momentum={momentum!r} must be a number in [0, 1].")
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self.l2_decay = float(l2_decay)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.momentum_buffers = []
        if self.momentum:
            self.momentum_buffers = self.add_optimizer_variables(variables, "momentum_buffer")
        self.state_format = self.add_variable(
            shape=(),
            initializer=keras.initializers.Constant(STATE_FORMAT),
            dtype="int32",
            name="state_format",
        )

    def update_step(self, gradient, variable, learning_rate):
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        if self.l2_decay:
            gradient = gradient + ops.cast(self.l2_decay, variable.dtype) * variable
        direction = gradient
        if self.momentum:
            momentum = ops.cast(self.momentum, variable.dtype)
            buffer = self.momentum_buffers[self._get_variable_index(variable)]
            new_buffer = momentum * buffer + gradient
            self.assign(buffer, new_buffer)
            direction = gradient + momentum * new_buffer if self.nesterov else new_buffer
        self.assign_sub(variable, learning_rate * direction)

    def load_own_variables(self, store):
        """Loads a saved state; refuses one saved before the buffer was learning-rate-free."""
        count = len(self.variables)
        if self.momentum and len(store.keys()) == count - 1:
            raise ValueError(
                f"Optimizer {self.name!r}: this state was saved by an older "
                "CoupledWeightDecaySGD (no `state_format`; its momentum slots hold "
                "learning-rate-scaled velocities, not PyTorch's buffers) and cannot be resumed "
                "exactly; delete the backup and train the stage again from its start, or load "
                "the model with compile=False to use its weights only."
            )
        super().load_own_variables(store)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"momentum": self.momentum, "nesterov": self.nesterov, "l2_decay": self.l2_decay}
        )
        return config
