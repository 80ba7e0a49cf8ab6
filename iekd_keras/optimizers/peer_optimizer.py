"""One optimizer made of several, each owning one group of variables (e.g. one DML peer each)."""

import keras


def _is_variable_group(value):
    return isinstance(value, list | tuple)


@keras.saving.register_keras_serializable(package="iekd_keras")
class PeerOptimizer(keras.optimizers.Optimizer):
    """A composite optimizer: one inner optimizer per variable group, under one `model.optimizer`.

    Mutual learning trains two networks, each with its own optimizer state (momentum slots and
    iteration count), but Keras's machinery (saving, `BackupAndRestore`, learning-rate callbacks,
    the JAX trainer) only carries `model.optimizer`. This wrapper is that one optimizer:

    - `build(groups)` takes one list of variables per inner optimizer and builds inner optimizer
      `k` on group `k`, in order. The groups must not share a variable. Once built, a later
      `build(...)` (e.g. Keras's own with the flat list of trainable variables) does nothing.
    - `apply_gradients(grads_and_vars, index)` updates group `index` with its own optimizer.
      Without `index`, each variable is sent to the optimizer that owns it.
    - `scale_loss(loss, index)` is the inner optimizer's `scale_loss`: give each group's loss its
      own scale (a `keras.optimizers.LossScaleOptimizer` inside keeps its own dynamic scale).
    - `variables` lists every inner optimizer's variables, inner optimizer by inner optimizer, in
      a fixed order. The state lives in the inner optimizers: Keras saving visits them as
      children of this one, so this wrapper saves no variables of its own (no duplicates).
    - `iterations` is the first inner optimizer's count; `learning_rate` reads the first inner
      optimizer's and sets every inner optimizer's (e.g. `ReduceLROnPlateau`).
    - `get_config` serialises the inner optimizers; `from_config` rebuilds them.

    Args:
        optimizers: the inner optimizers, one per group (instances, names or configs).
        name: name of the wrapper.

    Example:
        >>> optimizer = PeerOptimizer([CoupledWeightDecaySGD(0.1), CoupledWeightDecaySGD(0.1)])
        >>> optimizer.build([peer1.trainable_variables, peer2.trainable_variables])
        >>> optimizer.apply_gradients(zip(peer1_gradients, peer1.trainable_variables), index=0)
    """

    def __init__(self, optimizers, name=None, **kwargs):
        # Keras's base arguments make no sense on the wrapper: each inner optimizer has its own.
        for key, value in kwargs.items():
            if value not in (None, False):
                raise ValueError(
                    f"PeerOptimizer does not take `{key}={value!r}`; give it to the inner "
                    "optimizers instead."
                )
        super().__init__(learning_rate=0.0, name=name)
        optimizers = [keras.optimizers.get(optimizer) for optimizer in optimizers]
        if not optimizers:
            raise ValueError("PeerOptimizer needs at least one inner optimizer.")
        if len({id(optimizer) for optimizer in optimizers}) != len(optimizers):
            raise ValueError(
                "PeerOptimizer got the same optimizer object twice; each group needs its own "
                "(clone one with `type(opt).from_config(opt.get_config())`)."
            )
        for optimizer in optimizers:
            if isinstance(optimizer, PeerOptimizer):
                raise ValueError("A PeerOptimizer cannot hold another PeerOptimizer.")
        self._peer_optimizers = optimizers
        self._owners = {}

    @property
    def optimizers(self):
        """The inner optimizers, in group order."""
        return list(self._peer_optimizers)

    def build(self, var_list):
        """Builds inner optimizer `k` on `var_list[k]` (one list of variables per group).

        A flat list of variables is accepted only once built (then ignored), or when there is a
        single inner optimizer.
        """
        if self.built:
            return
        groups = list(var_list)
        if not all(_is_variable_group(group) for group in groups):
            if len(self._peer_optimizers) != 1:
                raise ValueError(
                    f"{self.name}: build the PeerOptimizer with one list of variables per inner "
                    f"optimizer ({len(self._peer_optimizers)} lists), not a flat list of "
                    f"{len(groups)} variables; a MutualDistiller does this in compile()."
                )
            groups = [groups]
        if len(groups) != len(self._peer_optimizers):
            raise ValueError(
                f"{self.name}: got {len(groups)} variable groups for "
                f"{len(self._peer_optimizers)} inner optimizers."
            )
        owners = {}
        for index, group in enumerate(groups):
            for variable in group:
                key = self._var_key(variable)
                if key in owners:
                    raise ValueError(
                        f"{self.name}: variable {variable.path!r} is in groups {owners[key]} "
                        f"and {index}; each variable must belong to exactly one group."
                    )
                owners[key] = index
        for optimizer, group in zip(self._peer_optimizers, groups, strict=True):
            if not optimizer.built:
                optimizer.build(list(group))
        self._owners = owners
        super().build([variable for group in groups for variable in group])

    def owner(self, variable):
        """Index of the inner optimizer that updates `variable`."""
        key = self._var_key(variable)
        if key not in self._owners:
            raise ValueError(
                f"{self.name}: variable {getattr(variable, 'path', variable)!r} is in no group "
                "this optimizer was built with."
            )
        return self._owners[key]

    def _route(self, grads, variables):
        routed = [([], []) for _ in self._peer_optimizers]
        for gradient, variable in zip(grads, variables, strict=True):
            sub_grads, sub_vars = routed[self.owner(variable)]
            sub_grads.append(gradient)
            sub_vars.append(variable)
        return routed

    def apply_gradients(self, grads_and_vars, index=None):
        grads_and_vars = list(grads_and_vars)
        if not grads_and_vars:
            return self.iterations
        grads, variables = zip(*grads_and_vars, strict=True)
        self.apply(list(grads), list(variables), index=index)
        return self.iterations

    def apply(self, grads, trainable_variables=None, index=None):
        """Updates group `index` with its optimizer, or every variable with its owner's."""
        if not self.built:
            raise ValueError(
                f"{self.name}: build the PeerOptimizer with its variable groups before applying "
                "gradients."
            )
        if index is not None:
            optimizer = self._peer_optimizers[index]
            variables = trainable_variables
            if variables is None:
                variables = optimizer._trainable_variables
            for variable in variables:
                if self.owner(variable) != index:
                    raise ValueError(
                        f"{self.name}: variable {variable.path!r} belongs to group "
                        f"{self.owner(variable)}, not {index}."
                    )
            optimizer.apply(list(grads), list(variables))
            return
        if trainable_variables is None:
            trainable_variables = self._trainable_variables
        for optimizer, (sub_grads, sub_vars) in zip(
            self._peer_optimizers, self._route(grads, trainable_variables), strict=True
        ):
            if sub_vars:
                optimizer.apply(sub_grads, sub_vars)

    def stateless_apply(self, optimizer_variables, grads, trainable_variables, index=None):
        """Stateless `apply` (JAX): returns (new trainable values, new optimizer values).

        `optimizer_variables` are the values of `self.variables`. With `index`, `grads` and
        `trainable_variables` are group `index`'s, in its order; without, they are every
        group's, in the order the wrapper was built with. Each inner optimizer runs its own
        `stateless_apply` (so a LossScaleOptimizer inside keeps its dynamic scale).
        """
        if not self.built:
            raise ValueError(
                f"{self.name}: build the PeerOptimizer with its variable groups before applying "
                "gradients."
            )
        optimizer_variables = list(optimizer_variables)
        if len(optimizer_variables) != len(self.variables):
            raise ValueError(
                f"{self.name}: got {len(optimizer_variables)} optimizer values for "
                f"{len(self.variables)} variables."
            )
        groups = [optimizer._trainable_variables for optimizer in self._peer_optimizers]
        chosen = range(len(groups)) if index is None else [index]
        expected = sum(len(groups[i]) for i in chosen)
        grads, trainable_variables = list(grads), list(trainable_variables)
        if len(grads) != expected or len(trainable_variables) != expected:
            raise ValueError(
                f"{self.name}: got {len(grads)} gradients and {len(trainable_variables)} "
                f"values for the {expected} variables of group(s) {list(chosen)}."
            )
        new_trainable, new_optimizer, start, offset = [], [], 0, 0
        for position, optimizer in enumerate(self._peer_optimizers):
            count = len(optimizer.variables)
            own = optimizer_variables[offset : offset + count]
            offset += count
            if position in chosen:
                size = len(groups[position])
                values, own = optimizer.stateless_apply(
                    own, grads[start : start + size], trainable_variables[start : start + size]
                )
                new_trainable += list(values)
                start += size
            new_optimizer += list(own)
        return new_trainable, new_optimizer

    def scale_loss(self, loss, index=0):
        """The loss scaled for the gradients of group `index` (its optimizer's `scale_loss`)."""
        return self._peer_optimizers[index].scale_loss(loss)

    def finalize_variable_values(self, var_list):
        for optimizer, (_, sub_vars) in zip(
            self._peer_optimizers, self._route([None] * len(var_list), var_list), strict=True
        ):
            if sub_vars:
                optimizer.finalize_variable_values(sub_vars)

    @property
    def variables(self):
        return [variable for optimizer in self._peer_optimizers for variable in optimizer.variables]

    def save_own_variables(self, store):
        """Nothing: the inner optimizers hold the state, and Keras saves them as children."""

    def load_own_variables(self, store):
        """Nothing: the inner optimizers load their own state (see `save_own_variables`)."""

    def set_weights(self, weights):
        weights = list(weights)
        if len(weights) != len(self.variables):
            raise ValueError(
                f"{self.name}: got {len(weights)} weights for {len(self.variables)} variables."
            )
        start = 0
        for optimizer in self._peer_optimizers:
            count = len(optimizer.variables)
            optimizer.set_weights(weights[start : start + count])
            start += count

    @property
    def iterations(self):
        """The first inner optimizer's step count (each inner optimizer counts its own)."""
        return self._peer_optimizers[0].iterations

    @property
    def learning_rate(self):
        """The first inner optimizer's learning rate."""
        return self._peer_optimizers[0].learning_rate

    @learning_rate.setter
    def learning_rate(self, learning_rate):
        for optimizer in self._peer_optimizers:
            optimizer.learning_rate = learning_rate

    @property
    def loss_scale_factor(self):
        return getattr(self, "_peer_loss_scale_factor", None)

    @loss_scale_factor.setter
    def loss_scale_factor(self, value):
        # The base class sets None before the inner optimizers exist; a later value goes to all.
        self._peer_loss_scale_factor = value
        if value is not None:
            for optimizer in self._peer_optimizers:
                optimizer.loss_scale_factor = value

    def get_config(self):
        return {
            "name": self.name,
            "optimizers": [
                keras.saving.serialize_keras_object(optimizer)
                for optimizer in self._peer_optimizers
            ],
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["optimizers"] = [
            keras.saving.deserialize_keras_object(optimizer, custom_objects=custom_objects)
            for optimizer in config["optimizers"]
        ]
        return cls(**config)
