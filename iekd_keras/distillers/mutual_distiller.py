"""Deep mutual learning (DML) of two peers, with the IE-DML inheritance/exploration terms."""

import contextlib

import keras
from keras import ops

from iekd_keras.distillers.ie_branch import IEBranch, add_ie_terms, build_encoders, distance_terms
from iekd_keras.distillers.model_checks import two_output_shapes
from iekd_keras.distillers.term_model import (
    TermModel,
    cross_entropy_share,
    deserialized,
    serialize,
    supervised_loss_fn,
)
from iekd_keras.layers import FactorAutoencoder, FeatureSplit
from iekd_keras.losses import weights as loss_weights
from iekd_keras.losses.divergences import kl_divergence_share
from iekd_keras.losses.reconstruction import check_reconstruction, reconstruction_share
from iekd_keras.optimizers.peer_optimizer import PeerOptimizer

PEER_FACTORS = ("autoencoder", "inheritance")
UPDATES = ("alternating", "simultaneous")
PEERS = (0, 1)


def peer_name(index):
    """Log prefix of peer `index` (0-based): "peer1" or "peer2"."""
    return f"peer{index + 1}"


@keras.saving.register_keras_serializable(package="iekd_keras")
class MutualDistiller(TermModel):
    """Two peers trained together from scratch: DML, and IE-DML when the IE weights are on.

    Peer k (k = 1, 2; the other peer is -k) minimises (docs/method.md#ie-dml)

        L_k = CE_k + kl_weight * T^2 * KL(p_-k || p_k)
              + lambda_inh * D_p(F_k^inh, F_-k) - lambda_exp * D_p(F_k^exp, F_-k)
              + reconstruction_k

    - `p = softmax(logits / T)`; the KL is summed over classes, averaged over the global batch,
      and `p_-k` is under stop-gradient. The T^2 factor keeps the gradient scale independent of
      T; at the DML default T = 1 it is 1 (the released DML code has no temperature).
    - IE terms (on when `lambda_inh` or `lambda_exp` is non-zero): peer k splits its last feature
      map by channel with its own `FeatureSplit` (shared settings) and encodes each part with
      its own `FactorEncoder`s; both parts are compared with the PEER's factor F_-k, under
      stop-gradient. How F_-k is made is not in the released code (docs/method.md#ie-dml):
      - `peer_factor="autoencoder"` (default; choice (a), an assumption): every peer
        has a `FactorAutoencoder` on its own full feature map, trained online; its encoder
        output is the factor the other peer compares against. `reconstruction_k` is the
        reconstruction error (`reconstruction`) of peer k's auto-encoder on peer k's features under
        stop-gradient: it trains that auto-encoder only, and is part of peer k's update. In
        training the auto-encoder runs once, in training mode: the same factor is its code
        and the other peer's target.
      - `peer_factor="inheritance"` (choice (b)): F_-k is the peer's own inheritance factor;
        there are no auto-encoders and no reconstruction term.
    - With the IE weights at 0 (the default) this is plain DML: no split, encoders or
      auto-encoders are built. IE-DML configurations set lambda_inh = lambda_exp = 50, the
      paper's IE-KD weights (the IE-DML weights are not reported).

    Updates (`update`):
    - "alternating" (default; the DML paper and released code, `processors/DML.py`): forward
      both peers, update peer 1 with L_1; then RECOMPUTE both forwards and update peer 2 with
      L_2, so peer 2 sees the updated peer 1. Every forward runs in training mode, so each
      peer's BatchNorm moving statistics are updated twice per step, as in the released code.
    - "simultaneous": one forward of both, both peers updated from it.

    Optimizer: `compile(optimizer=...)` takes one optimizer, cloned once per peer with
    `from_config(get_config())`, a list of two, or a `PeerOptimizer`. `model.optimizer` is a
    `PeerOptimizer` holding one inner optimizer per peer (own slots and iteration count),
    built at compile time on the variable groups `variable_groups()`: group k holds peer k's
    trainable variables, its two split encoders and its auto-encoder. `iterations` (and the step
    of loss-weight schedules) is each peer's own optimizer's count, equal for both peers.

    Logs: "loss" (the sum of both peers' losses) and, for each peer, `peerk_loss`,
    `peerk_ce_loss`, `peerk_kl_loss` (the unweighted KL at temperature T),
    `peerk_inheritance_loss` and `peerk_exploration_loss` (when IE is on; the exploration term
    is already negative) and `peerk_reconstruction_loss` (with auto-encoders). In alternating
    mode peer 2's terms come from the recomputed forward. Compiled metrics apply to each peer's
    logits, as `peer1_accuracy` and `peer2_accuracy`. `evaluate()` runs both peers alone: each
    peer's loss is its cross-entropy, unless `peers_in_evaluation_terms=True`, which evaluates
    every term from one inference-mode forward.

    Peers are indexed from 0 in code (`peers[0]`, `peer(0)`, optimizer group 0) and named from
    1 in logs ("peer1"). `call(x)` and `predict` give peer 1's logits; `checkpoint_model` is
    peer 1; export either peer with `distiller.peers[k]`.

    Args:
        peer1: functional model returning `[logits, features]`, trained from its weights.
        peer2: a second such model (its own variables), same classes and feature spatial size.
        kl_weight: weight of the KL term (default 1, as `config/DML/.../resnet56-20.yaml`); a
            number or a `keras.optimizers.schedules.LearningRateSchedule` of the step.
        temperature: softmax temperature T of the KL term, > 0 (default 1).
        lambda_inh: weight of the inheritance term (default 0: IE off); number or schedule.
        lambda_exp: weight of the exploration term (default 0: IE off); number or schedule.
        peer_factor: "autoencoder" (default) or "inheritance", see above.
        factor_channels: channels of every factor (default 32, as IE-KD on CIFAR).
        reconstruction: the auto-encoders' reconstruction error, "l1" (default, as the released
            code trains its auto-encoders), "mse" or "rms"; see `iekd_keras.losses.reconstruction`.
        split_mode: "natural" (default) or "random"; see `FeatureSplit`.
        split_ratio: fraction of channels that inherit (default 0.5).
        split_seed: seed of the random split; both peers draw with it, so a seed gives both the
            same permutation (None: each its own).
        p: order of the factor distance (default 1).
        distance_metric: "lp" (default) or "cosine".
        update: "alternating" (default) or "simultaneous".
        sync_batchnorm: synchronise the BatchNorm statistics of the encoders and auto-encoders
            across replicas (TensorFlow strategies). The peers' own BatchNorms are set where
            the peers are built (e.g. `BatchNormalization(synchronized=True)`).
        peers_in_evaluation_terms: evaluate every term in `test_step` (default False).

    Example:
        >>> mutual = MutualDistiller(get_model("resnet32"), get_model("resnet32"))
        >>> mutual.compile(optimizer=CoupledWeightDecaySGD(schedule), metrics=["accuracy"])
        >>> mutual.fit(train_dataset, epochs=200)
        >>> mutual.peers[1].save("peer2.keras")

    References: Zhang et al., "Deep Mutual Learning", CVPR 2018; Huang et al., "Revisiting
    Knowledge Distillation: An Inheritance and Exploration Framework", CVPR 2021.
    """

    def __init__(
        self,
        peer1,
        peer2,
        kl_weight=1.0,
        temperature=1.0,
        lambda_inh=0.0,
        lambda_exp=0.0,
        peer_factor="autoencoder",
        factor_channels=32,
        reconstruction="l1",
        split_mode="natural",
        split_ratio=0.5,
        split_seed=None,
        p=1.0,
        distance_metric="lp",
        update="alternating",
        sync_batchnorm=False,
        peers_in_evaluation_terms=False,
        **kwargs,
    ):
        kl_weight = loss_weights.check_loss_weight("kl_weight", kl_weight)
        lambda_inh = loss_weights.check_loss_weight("lambda_inh", lambda_inh)
        lambda_exp = loss_weights.check_loss_weight("lambda_exp", lambda_exp)
        for name, value, choices in (
            ("peer_factor", peer_factor, PEER_FACTORS),
            ("update", update, UPDATES),
        ):
            if value not in choices:
                raise ValueError(f"{name}={value!r} is not supported; expected one of {choices}.")
        check_reconstruction(reconstruction)
        if isinstance(temperature, bool) or not isinstance(temperature, int | float):
            raise ValueError(f"temperature={temperature!r} must be a positive number.")
        if not temperature > 0:
            raise ValueError(f"temperature={temperature!r} must be a positive number.")
        FeatureSplit(split_mode, split_ratio, split_seed)  # checks the split settings early
        if peer1 is peer2:
            raise ValueError("peer1 and peer2 are the same model; give two separate models.")
        use_ie = loss_weights.is_switched_on(lambda_inh) or loss_weights.is_switched_on(lambda_exp)
        use_autoencoders = use_ie and peer_factor == "autoencoder"
        names = ["loss"]
        for index in PEERS:
            prefix = peer_name(index)
            names += [f"{prefix}_loss", f"{prefix}_ce_loss", f"{prefix}_kl_loss"]
            if use_ie:
                names += [f"{prefix}_inheritance_loss", f"{prefix}_exploration_loss"]
            if use_autoencoders:
                names.append(f"{prefix}_reconstruction_loss")
        super().__init__(term_names=names, **kwargs)

        shapes = [
            two_output_shapes(peer, role) for peer, role in ((peer1, "peer1"), (peer2, "peer2"))
        ]
        (logits1, features1), (logits2, features2) = shapes
        if logits1[-1] != logits2[-1]:
            raise ValueError(
                f"peer1 {peer1.name!r} predicts {logits1[-1]} classes (logits {logits1}) but "
                f"peer2 {peer2.name!r} predicts {logits2[-1]} (logits {logits2}); they must agree."
            )
        shared = {id(v) for v in peer1.weights} & {id(v) for v in peer2.weights}
        if shared:
            raise ValueError(
                f"peer1 {peer1.name!r} and peer2 {peer2.name!r} share {len(shared)} variables; "
                "each peer must own its variables."
            )
        if use_ie and tuple(features1[1:3]) != tuple(features2[1:3]):
            raise ValueError(
                f"peer1 {peer1.name!r} features are {features1[1]}x{features1[2]} (features "
                f"{features1}) but peer2 {peer2.name!r} features are {features2[1]}x"
                f"{features2[2]} (features {features2}); the IE terms compare factors of the "
                "two peers, whose spatial sizes must match."
            )
        self.peers = [peer1, peer2]
        self.kl_weight = kl_weight
        self.temperature = float(temperature)
        self.lambda_inh = lambda_inh
        self.lambda_exp = lambda_exp
        self.peer_factor = peer_factor
        self.factor_channels = int(factor_channels)
        self.reconstruction = reconstruction
        self.split_mode = split_mode
        self.split_ratio = float(split_ratio)
        self.split_seed = split_seed
        self.update = update
        self.sync_batchnorm = bool(sync_batchnorm)
        self.peers_in_evaluation_terms = bool(peers_in_evaluation_terms)
        self.use_ie = use_ie
        self.use_autoencoders = use_autoencoders
        self.peer_loss = None
        self.peer_loss_fn = None
        self.peer_metric_specs = None
        self.peer_metrics = [[], []]

        self.inheritance_loss, self.exploration_loss = distance_terms(p, distance_metric)
        splits, inheritance_encoders, exploration_encoders, autoencoders = [], [], [], []
        if use_ie:
            # Peer 1's layers, then peer 2's: a fixed creation (and initialisation) order.
            for index, features in zip(PEERS, (features1, features2), strict=True):
                parts = self._build_peer_layers(index, features)
                for collection, layer in zip(
                    (splits, inheritance_encoders, exploration_encoders, autoencoders),
                    parts,
                    strict=True,
                ):
                    if layer is not None:
                        collection.append(layer)
        self.feature_splits = splits
        self.inheritance_encoders = inheritance_encoders
        self.exploration_encoders = exploration_encoders
        self.autoencoders = autoencoders
        self.built = True

    def _build_peer_layers(self, index, features):
        prefix = peer_name(index)
        split = FeatureSplit(
            self.split_mode, self.split_ratio, self.split_seed, name=f"{prefix}_feature_split"
        )
        inheritance_encoder, exploration_encoder = build_encoders(
            split, features, self.factor_channels, self.sync_batchnorm, prefix=f"{prefix}_"
        )
        autoencoder = None
        if self.use_autoencoders:
            autoencoder = FactorAutoencoder(
                self.factor_channels, synchronized=self.sync_batchnorm, name=f"{prefix}_autoencoder"
            )
            autoencoder.build(features)
        return split, inheritance_encoder, exploration_encoder, autoencoder

    # ----------------------------------------------------------------------------------------
    # Structure

    def peer(self, index):
        """Peer `index`, counted from 0 (`peer(0)` is "peer1" in the logs)."""
        return self.peers[index]

    @property
    def checkpoint_model(self):
        """What a checkpoint of this stage holds: peer 1 (export peer 2 via `peers[1]`)."""
        return self.peers[0]

    def call(self, inputs, training=False):
        """Peer 1's logits."""
        return self.peers[0](inputs, training=training)[0]

    def variable_groups(self):
        """Two lists of variables: what each peer's update trains, in a fixed order."""
        groups = []
        for index in PEERS:
            layers = [self.peers[index]]
            if self.use_ie:
                layers += [self.inheritance_encoders[index], self.exploration_encoders[index]]
            if self.use_autoencoders:
                layers.append(self.autoencoders[index])
            groups.append([v for layer in layers for v in layer.trainable_variables])
        grouped = {id(v) for group in groups for v in group}
        orphans = [v.path for v in self.trainable_variables if id(v) not in grouped]
        if orphans:
            raise ValueError(f"Trainable variables that no peer owns: {orphans}.")
        return groups

    def _ie_branch(self, index):
        """Peer `index`'s split, encoders and the shared distances (IE on)."""
        return IEBranch(
            self.feature_splits[index],
            self.inheritance_encoders[index],
            self.exploration_encoders[index],
            self.inheritance_loss,
            self.exploration_loss,
        )

    # ----------------------------------------------------------------------------------------
    # Compilation

    @property
    def metrics(self):
        return [*self.term_trackers, *(m for peer in self.peer_metrics for m in peer)]

    def _strategy_scope(self):
        if keras.backend.backend() != "tensorflow":
            return contextlib.nullcontext()
        import tensorflow as tf

        strategy = self.distribute_strategy
        if tf.distribute.get_strategy() is strategy:
            return contextlib.nullcontext()
        return strategy.scope()

    def compile(self, optimizer="sgd", loss=None, metrics=None, auto_scale_loss=True, **kwargs):
        """Like `keras.Model.compile`, for the two peers; returns the model so calls chain.

        Args:
            optimizer: one optimizer (cloned for each peer), a list of two, or a
                `PeerOptimizer` of two. Becomes a `PeerOptimizer`, built here on
                `variable_groups()`. Under the "mixed_float16" policy each inner optimizer is
                wrapped in its own `LossScaleOptimizer` (unless `auto_scale_loss=False`).
            loss: each peer's supervised loss on its logits, returning per-sample values as
                `loss(labels, logits)`; default sparse categorical cross-entropy from logits.
            metrics: metrics of each peer's logits, logged as `peer1_<name>`, `peer2_<name>`.
                "accuracy"/"acc" mean sparse categorical accuracy (labels are class indices);
                give "categorical_accuracy" for one-hot labels.
        """
        if kwargs.get("loss_weights") or kwargs.get("weighted_metrics"):
            raise ValueError("MutualDistiller takes no loss_weights or weighted_metrics.")
        self.peer_loss = loss
        self.peer_loss_fn = supervised_loss_fn(loss)
        with self._strategy_scope():
            peer_optimizer = self._peer_optimizer(optimizer, auto_scale_loss)
            self.peer_metric_specs = list(metrics) if metrics is not None else None
            self.peer_metrics = [self._peer_metrics(metrics, index) for index in PEERS]
            super().compile(optimizer=peer_optimizer, metrics=None, auto_scale_loss=False, **kwargs)
            self.optimizer.build(self.variable_groups())
        return self

    def _peer_optimizer(self, optimizer, auto_scale_loss):
        if isinstance(optimizer, PeerOptimizer):
            inner = optimizer.optimizers
            name = optimizer.name
        elif isinstance(optimizer, list | tuple):
            inner = [keras.optimizers.get(o) for o in optimizer]
            name = None
        else:
            optimizer = keras.optimizers.get(optimizer)
            config = optimizer.get_config()
            inner = []
            for index in PEERS:
                clone_config = dict(config, name=f"{config['name']}_{peer_name(index)}")
                inner.append(type(optimizer).from_config(clone_config))
            name = None
        if len(inner) != len(PEERS):
            raise ValueError(f"MutualDistiller needs one optimizer per peer (2); got {len(inner)}.")
        if (
            auto_scale_loss
            and self.dtype_policy.name == "mixed_float16"
            and not any(isinstance(o, keras.optimizers.LossScaleOptimizer) for o in inner)
        ):
            inner = [
                keras.optimizers.LossScaleOptimizer(o, name=f"loss_scale_{peer_name(i)}")
                for i, o in enumerate(inner)
            ]
            return PeerOptimizer(inner, name=name)
        if isinstance(optimizer, PeerOptimizer):
            return optimizer
        return PeerOptimizer(inner, name=name)

    def _peer_metrics(self, metrics, index):
        made = []
        for spec in metrics or []:
            if isinstance(spec, str) and spec in ("accuracy", "acc"):
                metric = keras.metrics.SparseCategoricalAccuracy(name=spec)
            elif isinstance(spec, keras.metrics.Metric):
                metric = type(spec).from_config(spec.get_config())
            else:
                function = keras.metrics.get(spec)
                if isinstance(function, keras.metrics.Metric):
                    metric = function
                else:
                    name = spec if isinstance(spec, str) else function.__name__
                    metric = keras.metrics.MeanMetricWrapper(function, name=name)
            config = metric.get_config()
            config["name"] = f"{peer_name(index)}_{metric.name}"
            made.append(type(metric).from_config(config))
        return made

    def get_compile_config(self):
        config = super().get_compile_config()
        if config:
            config["loss"] = serialize(self.peer_loss)
            config["metrics"] = serialize(self.peer_metric_specs)
        return config

    def compile_from_config(self, config):
        self.compile(**keras.saving.deserialize_keras_object(config))

    # ----------------------------------------------------------------------------------------
    # Loss math (backend-agnostic)

    def _images(self, x):
        if isinstance(x, tuple | list):
            raise ValueError(
                f"MutualDistiller inputs are one image tensor; got a sequence of {len(x)}."
            )
        return x

    def compute_peer_terms(self, x, y, peers=PEERS, training=True):
        """The named terms of the peers in `peers` (an index or indices) from ONE forward pass.

        Both peers run (each peer's loss needs the other's logits); each layer runs at most once,
        and only what the listed peers' losses need. Every value is this replica's share (see
        `iekd_keras.distribute.replicas`); the other peer's outputs enter under stop-gradient.
        Returns `(terms, logits)`: `terms` holds `peerk_*` for each listed peer (no total "loss"),
        and `logits` both peers' logits.
        """
        if y is None:
            raise ValueError("MutualDistiller needs labelled batches: (inputs, labels).")
        updated = (peers,) if isinstance(peers, int) else tuple(peers)
        if not set(updated) <= set(PEERS):
            raise ValueError(f"peers={peers!r} must be indices among {PEERS}.")
        images = self._images(x)
        outputs = [self.peers[index](images, training=training) for index in PEERS]
        logits = [output[0] for output in outputs]
        features = [output[1] for output in outputs]
        targets = self._peer_factors(features, updated, training) if self.use_ie else {}
        terms = {}
        for index in updated:
            prefix = peer_name(index)
            other = 1 - index
            step = self._step(index)
            ce_loss = cross_entropy_share(y, logits[index], self.peer_loss_fn)
            kl_loss = kl_divergence_share(logits[other], logits[index], self.temperature)
            kl_scale = loss_weights.loss_weight_at(self.kl_weight, step) * self.temperature**2
            total = ce_loss + kl_scale * kl_loss
            terms[f"{prefix}_ce_loss"] = ce_loss
            terms[f"{prefix}_kl_loss"] = kl_loss
            if self.use_ie:
                peer_factor = ops.stop_gradient(targets["factor", other])
                inheritance, exploration = self._ie_branch(index).terms(
                    targets["inheritance", index], targets["exploration", index], peer_factor
                )
                total = add_ie_terms(
                    total, inheritance, exploration, self.lambda_inh, self.lambda_exp, step
                )
                terms[f"{prefix}_inheritance_loss"] = inheritance
                terms[f"{prefix}_exploration_loss"] = exploration
            if self.use_autoencoders:
                reconstruction = targets["reconstruction", index]
                total = total + reconstruction
                terms[f"{prefix}_reconstruction_loss"] = reconstruction
            terms[f"{prefix}_loss"] = total
        return terms, logits

    def _peer_factors(self, features, updated, training):
        """Split factors of the updated peers, the factors they compare with, reconstructions.

        Keys: ("inheritance" | "exploration" | "factor" | "reconstruction", peer index).
        "factor" is what the OTHER peer compares against (not yet under stop-gradient).
        """
        values = {}
        targets = {1 - index for index in updated}
        for index in PEERS:
            needs_split = index in updated
            needs_inheritance = needs_split or (
                index in targets and self.peer_factor == "inheritance"
            )
            if needs_inheritance:
                inheritance, exploration = self._ie_branch(index).factors(
                    features[index], training, exploration=needs_split
                )
                values["inheritance", index] = inheritance
                if needs_split:
                    values["exploration", index] = exploration
            if self.peer_factor == "inheritance":
                if index in targets:
                    values["factor", index] = values["inheritance", index]
                continue
            own_features = ops.stop_gradient(features[index])
            autoencoder = self.autoencoders[index]
            if needs_split:
                factor, reconstructed = autoencoder(own_features, training=training)
                values["reconstruction", index] = reconstruction_share(
                    reconstructed, own_features, self.reconstruction
                )
                values["factor", index] = factor
            elif index in targets:
                values["factor", index] = autoencoder.encoder(own_features, training=training)
        return values

    def compute_terms(self, x, y, training):
        """Every term of both peers from one forward, plus "loss"; in evaluation (unless
        `peers_in_evaluation_terms`), each peer alone: its loss is its cross-entropy."""
        if training or self.peers_in_evaluation_terms:
            terms, logits = self.compute_peer_terms(x, y, PEERS, training=training)
        else:
            if y is None:
                raise ValueError("MutualDistiller needs labelled batches: (inputs, labels).")
            images = self._images(x)
            terms, logits = {}, []
            for index in PEERS:
                peer_logits = self.peers[index](images, training=False)[0]
                ce_loss = cross_entropy_share(y, peer_logits, self.peer_loss_fn)
                terms[f"{peer_name(index)}_ce_loss"] = ce_loss
                terms[f"{peer_name(index)}_loss"] = ce_loss
                logits.append(peer_logits)
        terms["loss"] = terms["peer1_loss"] + terms["peer2_loss"]
        return terms, logits

    # ----------------------------------------------------------------------------------------
    # Steps

    def _metric_logs(self, y, predictions, term_logs):
        """The step's logs: the terms' `term_logs`, then each peer's metrics of its logits."""
        for metrics, logits in zip(self.peer_metrics, predictions, strict=True):
            for metric in metrics:
                metric.update_state(y, logits)
        logs = dict(term_logs)
        for metrics in self.peer_metrics:
            logs.update({metric.name: metric.result() for metric in metrics})
        return logs

    def _update(self, x, y, gradient_step):
        """The DML update of both peers (see the class docstring), for both backends."""
        groups = self.variable_groups()
        if self.update == "alternating":
            terms, predictions = {}, []
            for index in PEERS:

                def scaled_peer_loss(index=index):
                    peer_terms, logits = self.compute_peer_terms(x, y, index, training=True)
                    loss = peer_terms[f"{peer_name(index)}_loss"]
                    return self.optimizer.scale_loss(loss, index), (peer_terms, logits[index])

                peer_terms, logits = gradient_step(scaled_peer_loss, groups[index], index=index)
                terms.update(peer_terms)
                predictions.append(logits)
        else:

            def scaled_loss():
                terms, predictions = self.compute_peer_terms(x, y, PEERS, training=True)
                # The peers' losses reach each other only under stop-gradient, so one gradient
                # of the sum gives each group exactly the gradient of its own peer's loss.
                loss = sum(
                    self.optimizer.scale_loss(terms[f"{peer_name(i)}_loss"], i) for i in PEERS
                )
                return loss, (terms, predictions)

            # Without an index, the PeerOptimizer sends each variable to its own peer's optimizer.
            terms, predictions = gradient_step(scaled_loss, groups[0] + groups[1])
        terms["loss"] = terms["peer1_loss"] + terms["peer2_loss"]
        return terms, predictions

    # ----------------------------------------------------------------------------------------
    # Serialisation

    def get_config(self):
        return {
            "name": self.name,
            "peer1": serialize(self.peers[0]),
            "peer2": serialize(self.peers[1]),
            "kl_weight": loss_weights.serialize_loss_weight(self.kl_weight),
            "temperature": self.temperature,
            "lambda_inh": loss_weights.serialize_loss_weight(self.lambda_inh),
            "lambda_exp": loss_weights.serialize_loss_weight(self.lambda_exp),
            "peer_factor": self.peer_factor,
            "factor_channels": self.factor_channels,
            "reconstruction": self.reconstruction,
            "split_mode": self.split_mode,
            "split_ratio": self.split_ratio,
            "split_seed": self.split_seed,
            "p": self.inheritance_loss.p,
            "distance_metric": self.inheritance_loss.metric,
            "update": self.update,
            "sync_batchnorm": self.sync_batchnorm,
            "peers_in_evaluation_terms": self.peers_in_evaluation_terms,
        }

    @classmethod
    def from_config(cls, config):
        weights = ("kl_weight", "lambda_inh", "lambda_exp")
        return cls(**deserialized(config, ("peer1", "peer2"), weights))
