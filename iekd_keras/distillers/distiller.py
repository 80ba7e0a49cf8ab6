"""The IE-KD Distiller: a frozen teacher, a student whose last feature map is split in two."""

import keras
from keras import ops

from iekd_keras import replicas
from iekd_keras.distillers.model_checks import two_output_shapes
from iekd_keras.distillers.term_model import TermModel
from iekd_keras.layers import ExplorationLoss, FactorEncoder, FeatureSplit, InheritanceLoss


def _serialize(value):
    return keras.saving.serialize_keras_object(value)


def _deserialize(value):
    return keras.saving.deserialize_keras_object(value)


@keras.saving.register_keras_serializable(package="iekd_keras")
class Distiller(TermModel):
    """Trains a student from a frozen teacher with the IE-KD objective (Huang et al., CVPR 2021).

    One training step (method notes §3, stage 2):
    1. the teacher runs in inference mode: `F_T = teacher_encoder(f_T)`, under stop-gradient;
    2. the student runs ONCE: `logits, f_S = student(x)`; `f_S` is split by channel into an
       inheritance and an exploration part, each encoded to a factor by its own `FactorEncoder`;
    3. `loss = student_loss_weight * CE + sum(extra terms)
               + lambda_inh * D_p(F_inh, F_T) - lambda_exp * D_p(F_exp, F_T)`;
    4. one gradient step on the student and its two encoders.
    `fit` reports `loss`, `ce_loss`, `inheritance_loss`, `exploration_loss` (already negative),
    each extra term under its name, and every compiled metric (on the student's logits).

    `evaluate()` and `predict()` run the student alone: `loss` and `ce_loss` are then the
    student's cross-entropy. Pass `teacher_in_evaluation=True` to also evaluate the IE terms.
    `distiller.student` stays a plain Keras model, ready to save or export.

    Args:
        teacher: frozen functional model returning `[logits, features]` (it is set untrainable).
        student: functional model returning `[logits, features]`, trained from its current weights.
        teacher_encoder: the pre-trained teacher `FactorEncoder` (e.g. the `.encoder` of a
            `FactorAutoencoder` fitted by `FactorAutoencoderTrainer`); set untrainable. May be
            None only when both lambdas are 0 (no IE terms, e.g. plain KD through
            `distillation_losses`).
        lambda_inh: weight of the inheritance loss (default 50, the paper's Table 6b).
        lambda_exp: weight of the exploration loss (default 50).
        student_loss_weight: weight of the cross-entropy (default 1; KD-style objectives
            use 1 - alpha).
        split_mode: "natural" (default, the released code) or "random" (the paper's wording).
        split_ratio: fraction of channels that inherit (default 0.5).
        split_seed: seed of the random split.
        p: order of the factor distance (default 1).
        distance_metric: "lp" (default) or "cosine".
        distillation_losses: extra terms added to the objective. Each is called as
            `term(teacher_outputs, student_outputs)` with both models' output lists
            (`[logits, features, ...]`, teacher ones under stop-gradient) and returns its
            weighted value as this replica's share (see `iekd_keras.replicas`); its `name` is
            the metric name. Keras layers among them are trained with the student.
        teacher_in_evaluation: run the teacher in `test_step` too (default False).
        sync_batchnorm: synchronise the BatchNorm statistics of the two student encoders across
            replicas (TensorFlow strategies only; Keras refuses it on JAX). Default False.

    Example:
        >>> distiller = Distiller(teacher, student, autoencoder.encoder)
        >>> distiller.compile(optimizer=CoupledWeightDecaySGD(0.1), metrics=["accuracy"])
        >>> distiller.fit(train_dataset, epochs=160)
        >>> distiller.student.save("student.keras")

    Reference: Huang et al., "Revisiting Knowledge Distillation: An Inheritance and Exploration
    Framework", CVPR 2021.
    """

    def __init__(
        self,
        teacher,
        student,
        teacher_encoder=None,
        lambda_inh=50.0,
        lambda_exp=50.0,
        student_loss_weight=1.0,
        split_mode="natural",
        split_ratio=0.5,
        split_seed=None,
        p=1.0,
        distance_metric="lp",
        distillation_losses=(),
        teacher_in_evaluation=False,
        sync_batchnorm=False,
        **kwargs,
    ):
        for name, value in (
            ("lambda_inh", lambda_inh),
            ("lambda_exp", lambda_exp),
            ("student_loss_weight", student_loss_weight),
        ):
            if not value >= 0:
                raise ValueError(f"{name}={value!r} must be a non-negative number.")
        use_ie = lambda_inh > 0 or lambda_exp > 0
        if use_ie and teacher_encoder is None:
            raise ValueError(
                f"lambda_inh={lambda_inh} and lambda_exp={lambda_exp} switch the IE terms on, "
                "which need the pre-trained teacher_encoder (a FactorEncoder); got None."
            )
        extra_names = [getattr(term, "name", None) for term in distillation_losses]
        for term, name in zip(distillation_losses, extra_names, strict=True):
            if not isinstance(name, str) or not callable(term):
                raise ValueError(
                    f"distillation_losses entry {term!r} must be callable with a string `name`."
                )
        ie_names = ["inheritance_loss", "exploration_loss"] if teacher_encoder is not None else []
        super().__init__(term_names=["loss", "ce_loss", *ie_names, *extra_names], **kwargs)

        teacher_logits, teacher_features = two_output_shapes(teacher, "teacher")
        student_logits, student_features = two_output_shapes(student, "student")
        if teacher_logits[-1] != student_logits[-1]:
            raise ValueError(
                f"The teacher {teacher.name!r} predicts {teacher_logits[-1]} classes (logits "
                f"{teacher_logits}) but the student {student.name!r} predicts "
                f"{student_logits[-1]} (logits {student_logits}); they must agree."
            )
        teacher.trainable = False
        self.teacher = teacher
        self.student = student
        self.teacher_encoder = teacher_encoder
        self.lambda_inh = float(lambda_inh)
        self.lambda_exp = float(lambda_exp)
        self.student_loss_weight = float(student_loss_weight)
        self.teacher_in_evaluation = bool(teacher_in_evaluation)
        self.sync_batchnorm = bool(sync_batchnorm)
        self.distillation_losses = list(distillation_losses)
        self.student_loss = None
        self.student_loss_fn = None

        self.feature_split = FeatureSplit(split_mode, split_ratio, split_seed, name="feature_split")
        self.inheritance_loss = InheritanceLoss(p=p, metric=distance_metric, name="inheritance")
        self.exploration_loss = ExplorationLoss(p=p, metric=distance_metric, name="exploration")
        self.inheritance_encoder = None
        self.exploration_encoder = None
        if teacher_encoder is not None:
            self._build_encoders(teacher, teacher_features, student, student_features)
        self.built = True

    def _build_encoders(self, teacher, teacher_features, student, student_features):
        """Builds the frozen teacher encoder and both student encoders, in a fixed order."""
        encoder = self.teacher_encoder
        if not encoder.built:
            encoder.build(teacher_features)
        encoder.trainable = False
        teacher_factor = tuple(encoder.compute_output_shape(teacher_features))
        if tuple(teacher_factor[1:3]) != tuple(student_features[1:3]):
            raise ValueError(
                f"The teacher factor of {teacher.name!r} is {teacher_factor[1]}x"
                f"{teacher_factor[2]} (features {teacher_features}) but the student "
                f"{student.name!r} features are {student_features[1]}x{student_features[2]} "
                f"(features {student_features}); the spatial sizes must match."
            )
        self.feature_split.build(student_features)
        inheritance_shape, exploration_shape = self.feature_split.compute_output_shape(
            student_features
        )
        self.inheritance_encoder = FactorEncoder(
            encoder.filters, synchronized=self.sync_batchnorm, name="inheritance_encoder"
        )
        self.exploration_encoder = FactorEncoder(
            encoder.filters, synchronized=self.sync_batchnorm, name="exploration_encoder"
        )
        self.inheritance_encoder.build(inheritance_shape)
        self.exploration_encoder.build(exploration_shape)

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, **kwargs):
        """Like `keras.Model.compile`; `loss` is the student's supervised loss on logits.

        The default is sparse categorical cross-entropy from logits. A given loss must return
        per-sample values when called as `loss(labels, logits)` (any Keras loss function, or a
        `keras.losses.Loss` whose `.call` is used). Returns the distiller, so calls can chain.
        """
        self.student_loss = loss
        if loss is None:
            self.student_loss_fn = _sparse_cross_entropy_from_logits
        elif isinstance(loss, keras.losses.Loss):
            self.student_loss_fn = loss.call
        else:
            self.student_loss_fn = keras.losses.get(loss)
        return super().compile(optimizer=optimizer, metrics=metrics, **kwargs)

    @property
    def checkpoint_model(self):
        """What a checkpoint of this stage holds: the bare student, never the teacher."""
        return self.student

    def get_compile_config(self):
        config = super().get_compile_config()
        if config is not None:
            config["loss"] = keras.saving.serialize_keras_object(self.student_loss)
        return config

    def call(self, inputs, training=False):
        """The student's logits (the teacher is not run)."""
        return self.student(inputs, training=training)[0]

    def compute_terms(self, x, y, training):
        """Every named loss term, as this replica's share, and the student's logits."""
        if y is None:
            raise ValueError("The Distiller needs labelled batches: (inputs, labels).")
        student_outputs = self.student(x, training=training)
        logits, features = student_outputs[0], student_outputs[1]
        loss_fn = self.student_loss_fn or _sparse_cross_entropy_from_logits
        per_sample = loss_fn(y, ops.cast(logits, "float32"))
        ce_loss = replicas.mean_share(ops.sum(per_sample), ops.shape(per_sample)[0])
        terms = {"ce_loss": ce_loss}
        total = self.student_loss_weight * ce_loss
        if not (training or self.teacher_in_evaluation):
            terms["loss"] = ce_loss
            return terms, logits
        teacher_outputs = [ops.stop_gradient(out) for out in self.teacher(x, training=False)]
        if self.teacher_encoder is not None:
            terms.update(self._ie_terms(teacher_outputs[1], features, training))
            total = total + self.lambda_inh * terms["inheritance_loss"]
            total = total + self.lambda_exp * terms["exploration_loss"]
        for term in self.distillation_losses:
            terms[term.name] = ops.cast(term(teacher_outputs, student_outputs), "float32")
            total = total + terms[term.name]
        terms["loss"] = total
        return terms, logits

    def _ie_terms(self, teacher_features, student_features, training):
        """L_inh and L_exp: both halves of the student against the same teacher factor."""
        teacher_factor = ops.stop_gradient(self.teacher_encoder(teacher_features, training=False))
        inheritance_part, exploration_part = self.feature_split(student_features)
        inheritance_factor = self.inheritance_encoder(inheritance_part, training=training)
        exploration_factor = self.exploration_encoder(exploration_part, training=training)
        return {
            "inheritance_loss": self.inheritance_loss(inheritance_factor, teacher_factor),
            "exploration_loss": self.exploration_loss(exploration_factor, teacher_factor),
        }

    def get_config(self):
        return {
            "name": self.name,
            "teacher": _serialize(self.teacher),
            "student": _serialize(self.student),
            "teacher_encoder": _serialize(self.teacher_encoder),
            "lambda_inh": self.lambda_inh,
            "lambda_exp": self.lambda_exp,
            "student_loss_weight": self.student_loss_weight,
            "split_mode": self.feature_split.mode,
            "split_ratio": self.feature_split.ratio,
            "split_seed": self.feature_split.seed,
            "p": self.inheritance_loss.p,
            "distance_metric": self.inheritance_loss.metric,
            "distillation_losses": [_serialize(term) for term in self.distillation_losses],
            "teacher_in_evaluation": self.teacher_in_evaluation,
            "sync_batchnorm": self.sync_batchnorm,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("teacher", "student", "teacher_encoder"):
            config[key] = _deserialize(config[key])
        config["distillation_losses"] = [_deserialize(t) for t in config["distillation_losses"]]
        return cls(**config)


def _sparse_cross_entropy_from_logits(labels, logits):
    return keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
