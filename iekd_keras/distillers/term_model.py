"""A keras.Model trained on a dict of named loss terms, each reported as a metric."""

import functools

import keras
from keras import ops

from iekd_keras.distillers.stateless_state import StatelessState
from iekd_keras.distribute import multi_worker, replicas
from iekd_keras.losses import weights as loss_weights
from iekd_keras.optimizers.peer_optimizer import PeerOptimizer


def tape_value_and_grad(function, variables):
    """TensorFlow: `function()` returns `(loss, aux)`; returns `(aux, gradients)`, the gradients
    of `loss` with respect to `variables` (None where it does not reach one), by a
    `tf.GradientTape`. The same contract as `StatelessState.value_and_grad` on JAX.

    Example:
        >>> aux, gradients = tape_value_and_grad(lambda: (loss_fn(), None), model.weights)
    """
    import tensorflow as tf

    with tf.GradientTape() as tape:
        loss, aux = function()
    return aux, tape.gradient(loss, variables)


def sparse_cross_entropy_from_logits(labels, logits):
    """Per-sample sparse categorical cross-entropy of `logits`: the default supervised loss."""
    return keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)


def supervised_loss_fn(loss):
    """The per-sample function `fn(labels, logits)` of a `compile(loss=...)` argument: the
    default cross-entropy for None, a `keras.losses.Loss`'s `call`, else `keras.losses.get`."""
    if loss is None:
        return sparse_cross_entropy_from_logits
    if isinstance(loss, keras.losses.Loss):
        return loss.call
    return keras.losses.get(loss)


def cross_entropy_share(labels, logits, loss_fn=None):
    """This replica's share of the batch mean of `loss_fn(labels, logits)` (default: the sparse
    cross-entropy), computed in float32 (see `iekd_keras.distribute.replicas`).

    Example:
        >>> ce_loss = cross_entropy_share(labels, student_logits)
    """
    per_sample = (loss_fn or sparse_cross_entropy_from_logits)(labels, ops.cast(logits, "float32"))
    return replicas.mean_share(ops.sum(per_sample), ops.shape(per_sample)[0])


def serialize(value):
    """`keras.saving.serialize_keras_object`, for the trainers' `get_config`."""
    return keras.saving.serialize_keras_object(value)


def deserialized(config, objects=(), weights=()):
    """A copy of a trainer's `get_config()` with the Keras objects under the keys `objects` (a
    list under a key: each item) and the loss weights under the keys `weights` deserialised.

    Example:
        >>> return cls(**deserialized(config, ("teacher", "student"), ("lambda_inh",)))
    """
    config = dict(config)
    for key in objects:
        value = config[key]
        if isinstance(value, list):
            config[key] = [keras.saving.deserialize_keras_object(item) for item in value]
        else:
            config[key] = keras.saving.deserialize_keras_object(value)
    for key in weights:
        config[key] = loss_weights.deserialize_loss_weight(config[key])
    return config


def _route(index):
    """The optimizer's `index` keyword: only given to route a step to one PeerOptimizer group."""
    return {} if index is None else {"index": index}


class TermModel(keras.Model):
    """Base of the distillers: subclasses put ALL loss math in `compute_terms`, in `keras.ops`.

    `compute_terms(x, y, training)` returns `(terms, predictions)`: `terms` maps names to this
    replica's share of each loss term (see `iekd_keras.distribute.replicas`) and holds the total
    under "loss"; `predictions` feed the compiled metrics (None for none). `train_step` and
    `test_step` are thin backend wrappers around it: a `tf.GradientTape` step on TensorFlow, a
    stateless step (`jax.value_and_grad`, `optimizer.stateless_apply`) on JAX. Every term is
    reported as its own metric with its global-batch value.

    On JAX, evaluation is compiled once per `evaluate`/`fit`: a loss weight that is a schedule
    of the optimizer step is read at the step the evaluation function was traced at.
    """

    def __init__(self, term_names, **kwargs):
        super().__init__(**kwargs)
        self.term_names = tuple(term_names)
        self.term_trackers = [keras.metrics.Mean(name=name) for name in self.term_names]

    @property
    def metrics(self):
        compiled = getattr(self, "_compile_metrics", None)
        return [*self.term_trackers, *([compiled] if compiled is not None else [])]

    def compile(self, *args, **kwargs):
        """`keras.Model.compile`, returning the model so that calls chain."""
        super().compile(*args, **kwargs)
        return self

    # Keras 3.15 / TensorFlow 2.21 break `fit` under MultiWorkerMirroredStrategy
    # (keras-team/keras#20585): the symbolic build reduces a per-replica data batch with
    # `strategy.reduce`, and the logs' MEAN reduction fails on scalars. Both are worked around
    # here, narrowly, while this flag is on; a canary test checks that upstream still fails.
    multi_worker_workaround = True

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if (
            self.multi_worker_workaround
            and iterator is not None
            and keras.backend.backend() == "tensorflow"
        ):
            strategy = self.distribute_strategy
            if multi_worker.in_multi_worker_mode(strategy):
                data_batch = multi_worker.first_local_batch(iterator, strategy)
                iterator = None
        return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def compile_from_config(self, config):
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.optimizer is not None:
            self.optimizer.build(self.trainable_variables)

    def compute_terms(self, x, y, training):
        raise NotImplementedError

    def _unpack(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if sample_weight is not None:
            raise ValueError(
                f"{type(self).__name__} got sample weights, which it does not support: "
                "give (inputs, labels) batches."
            )
        return x, y

    def _step(self, index=None):
        """The optimizer's iteration count, the step of loss-weight schedules (0 before
        `compile`); with a PeerOptimizer, that of inner optimizer `index`."""
        optimizer = getattr(self, "optimizer", None)
        if optimizer is None:
            return 0
        if index is not None and isinstance(optimizer, PeerOptimizer):
            return optimizer.optimizers[index].iterations
        return optimizer.iterations

    def _report(self, terms, y, predictions):
        """Updates the term trackers with `terms` and the metrics with `predictions`; returns
        the step's logs."""
        replicas_in_sync = replicas.replica_count()
        for tracker in self.term_trackers:
            if tracker.name in terms:
                tracker.update_state(terms[tracker.name] * replicas_in_sync)
        term_logs = {t.name: t.result() for t in self.term_trackers if t.name in terms}
        return self._finalize_logs(self._metric_logs(y, predictions, term_logs))

    def _metric_logs(self, y, predictions, term_logs):
        """The step's logs: the compiled metrics of `predictions` (none if None), then the terms'
        `term_logs`."""
        logs = self.compute_metrics(None, y, predictions, None) if predictions is not None else {}
        logs = {name: value for name, value in logs.items() if name not in self.term_names}
        return {**logs, **term_logs}

    def _finalize_logs(self, logs):
        """The step's logs as Keras's distributed step function can reduce them."""
        if (
            self.multi_worker_workaround
            and keras.backend.backend() == "tensorflow"
            and multi_worker.in_multi_worker_mode(self.distribute_strategy)
        ):
            # Keras reduces step outputs across workers with a MEAN over axis 0, which fails on
            # scalars; every replica holds the same global values, so one-element vectors
            # reduce back to exactly those scalars.
            logs = {name: ops.reshape(value, (1,)) for name, value in logs.items()}
        return logs

    def train_step(self, *args):
        """One training step: `train_step(data)` on TensorFlow, `train_step(state, data)` on JAX
        (Keras's stateless convention, returning `(logs, state)`)."""
        backend = keras.backend.backend()
        if backend == "jax":
            return self._stateless_train_step(*args)
        if backend != "tensorflow":
            raise NotImplementedError(
                f"{type(self).__name__}.train_step runs on the TensorFlow and JAX backends; "
                f"KERAS_BACKEND is {backend!r}."
            )
        (data,) = args
        x, y = self._unpack(data)
        terms, predictions = self._update(x, y, self._tape_step)
        return self._report(terms, y, predictions)

    def _update(self, x, y, gradient_step):
        """One optimizer step on every trainable variable; returns `(terms, predictions)`.

        `gradient_step(scaled_loss, variables, index=None)` calls `scaled_loss()`, which returns
        `(loss, aux)`, applies the loss's gradient to `variables` with the optimizer (inner
        optimizer `index` of a PeerOptimizer; without, each variable's owner) and returns `aux`:
        `_tape_step` on TensorFlow, `_stateless_step` on JAX. Subclasses with other updates
        override this method only, for both backends.
        """

        def scaled_loss():
            terms, predictions = self.compute_terms(x, y, training=True)
            return self.optimizer.scale_loss(terms["loss"]), (terms, predictions)

        return gradient_step(scaled_loss, self.trainable_variables)

    def _tape_step(self, scaled_loss, variables, index=None):
        """TensorFlow's `gradient_step` (see `_update`): a tape, then `apply_gradients`."""
        aux, gradients = tape_value_and_grad(scaled_loss, variables)
        self.optimizer.apply_gradients(zip(gradients, variables, strict=True), **_route(index))
        return aux

    def _stateless_step(self, values, scaled_loss, variables, index=None):
        """JAX's `gradient_step` (see `_update`) on the values in `values`, a StatelessState:
        `jax.value_and_grad`, then the optimizer's `stateless_apply`."""
        aux, gradients = values.value_and_grad(scaled_loss, variables)
        optimizer_variables = self.optimizer.variables
        new_values, new_optimizer_values = self.optimizer.stateless_apply(
            values.values(optimizer_variables),
            gradients,
            values.values(variables),
            **_route(index),
        )
        values.set_values(variables, new_values)
        values.set_values(optimizer_variables, new_optimizer_values)
        return aux

    def _stateless_train_step(self, state, data):
        values = StatelessState(
            [
                self.trainable_variables,
                self.non_trainable_variables,
                self.optimizer.variables,
                self.metrics_variables,
            ],
            state,
        )
        x, y = self._unpack(data)
        terms, predictions = self._update(x, y, functools.partial(self._stateless_step, values))
        logs = values.run(lambda: self._report(terms, y, predictions))
        return logs, values.value_lists()

    def test_step(self, *args):
        """One evaluation step: `test_step(data)`, or `test_step(state, data)` on JAX."""
        if keras.backend.backend() == "jax":
            state, data = args
            values = StatelessState(
                [self.trainable_variables, self.non_trainable_variables, self.metrics_variables],
                state,
            )
            return values.run(lambda: self._evaluate_batch(data)), values.value_lists()
        (data,) = args
        return self._evaluate_batch(data)

    def _evaluate_batch(self, data):
        x, y = self._unpack(data)
        terms, predictions = self.compute_terms(x, y, training=False)
        return self._report(terms, y, predictions)
