"""The IE-KD Distiller: a frozen teacher, a student whose last feature map is split in two."""

import keras
from keras import ops

from iekd_keras.distillers.ie_branch import IEBranch, add_ie_terms, build_encoders, distance_terms
from iekd_keras.distillers.model_checks import named_output_shapes, named_outputs
from iekd_keras.distillers.term_model import (
    TermModel,
    cross_entropy_share,
    deserialized,
    serialize,
    supervised_loss_fn,
)
from iekd_keras.layers import FeatureSplit
from iekd_keras.losses import weights as loss_weights


@keras.saving.register_keras_serializable(package="iekd_keras")
class Distiller(TermModel):
    """Trains a student from a frozen teacher with the IE-KD objective (Huang et al., CVPR 2021).

    One training step (docs/method.md#stage-2-student):
    1. the teacher runs in inference mode: `F_T = teacher_encoder(f_T)`, under stop-gradient;
    2. the student runs ONCE: `logits, f_S = student(x)`; `f_S` is split by channel into an
       inheritance and an exploration part, each encoded to a factor by its own `FactorEncoder`;
    3. `loss = student_loss_weight * CE + sum(extra terms)
               + lambda_inh * D_p(F_inh, F_T) - lambda_exp * D_p(F_exp, F_T)`;
    4. one gradient step on the student, its two encoders and any trainable extra term.
    `fit` reports `loss`, `ce_loss`, `inheritance_loss`, `exploration_loss` (already negative),
    each extra term under its name, and every compiled metric (on the student's logits).

    `evaluate()` and `predict()` run the student alone: `loss` and `ce_loss` are then the
    student's cross-entropy. Pass `teacher_in_evaluation=True` to also evaluate the other terms.
    `distiller.student` stays a plain Keras model, ready to save or export.

    Extra distillation terms (IE-X, docs/method.md#ie-x) are objects with a string `name`, called as
    `term(teacher_outputs, student_outputs, batch)`. The outputs are dicts of each model's
    outputs by name: "logits", "features", any further tapped output under its layer name, and,
    for the teacher, "factor" (F_T) when a teacher encoder is given; teacher values are under
    stop-gradient. `batch` holds "labels", "indices" (the examples' dataset indices when the
    pipeline yields `(images, indices)` inputs, else None), "step" (the optimizer's
    iteration count, for weight schedules) and "training" (for a term's own BatchNorm). A
    term returns its weighted value as this replica's share (see `iekd_keras.distribute.replicas`).
    Keras layers among the terms are trained with the student; a term with a
    `build(teacher_shapes, student_shapes)` method is built here, from the dicts of output
    shapes, so that the optimizer sees its variables.

    Args:
        teacher: frozen functional model returning `[logits, features, ...]` (set untrainable).
        student: functional model returning `[logits, features, ...]`, trained from its weights.
        teacher_encoder: the pre-trained teacher `FactorEncoder` (e.g. the `.encoder` of a
            `FactorAutoencoder` fitted by `FactorAutoencoderTrainer`); set untrainable. May be
            None only when both lambdas are 0 (no IE terms, e.g. plain KD).
        lambda_inh: weight of the inheritance loss (default 50, the paper's Table 6b); a number
            or a `keras.optimizers.schedules.LearningRateSchedule` of the step.
        lambda_exp: weight of the exploration loss (default 50), likewise.
        student_loss_weight: weight of the cross-entropy (default 1; KD-style objectives
            use 1 - alpha).
        split_mode: "natural" (default, the released code) or "random" (the paper's wording).
        split_ratio: fraction of channels that inherit (default 0.5).
        split_seed: seed of the random split.
        p: order of the factor distance (default 1).
        distance_metric: "lp" (default) or "cosine".
        distillation_losses: extra terms added to the objective (see above).
        teacher_in_evaluation: run the teacher in `test_step` too (default False).
        sync_batchnorm: synchronise the BatchNorm statistics of the two student encoders across
            replicas (TensorFlow strategies only; Keras refuses it on JAX). Default False.
        resize_teacher_factor: when the teacher factor and the student features differ in
            spatial size, resize the teacher factor to the student's size (bilinear,
            antialiased). Off by default: a mismatch is then an error.

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
        resize_teacher_factor=False,
        **kwargs,
    ):
        lambda_inh = loss_weights.check_loss_weight("lambda_inh", lambda_inh)
        lambda_exp = loss_weights.check_loss_weight("lambda_exp", lambda_exp)
        student_loss_weight = loss_weights.check_loss_weight(
            "student_loss_weight", student_loss_weight
        )
        use_ie = loss_weights.is_switched_on(lambda_inh) or loss_weights.is_switched_on(lambda_exp)
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
        ie_names = ["inheritance_loss", "exploration_loss"] if use_ie else []
        names = ["loss", "ce_loss", *ie_names, *extra_names]
        if len(set(names)) != len(names):
            raise ValueError(f"Loss term names must be unique; got {names}.")
        super().__init__(term_names=names, **kwargs)

        teacher_shapes = named_output_shapes(teacher, "teacher")
        student_shapes = named_output_shapes(student, "student")
        if teacher_shapes["logits"][-1] != student_shapes["logits"][-1]:
            raise ValueError(
                f"The teacher {teacher.name!r} predicts {teacher_shapes['logits'][-1]} classes "
                f"(logits {teacher_shapes['logits']}) but the student {student.name!r} predicts "
                f"{student_shapes['logits'][-1]} (logits {student_shapes['logits']}); "
                "they must agree."
            )
        teacher.trainable = False
        self.teacher = teacher
        self.student = student
        self.teacher_encoder = teacher_encoder
        self.use_ie = use_ie
        self.lambda_inh = lambda_inh
        self.lambda_exp = lambda_exp
        self.student_loss_weight = student_loss_weight
        self.teacher_in_evaluation = bool(teacher_in_evaluation)
        self.sync_batchnorm = bool(sync_batchnorm)
        self.resize_teacher_factor = bool(resize_teacher_factor)
        self.factor_size = None
        self.student_loss = None
        self.student_loss_fn = None

        self.feature_split = FeatureSplit(split_mode, split_ratio, split_seed, name="feature_split")
        self.inheritance_loss, self.exploration_loss = distance_terms(p, distance_metric)
        self.inheritance_encoder = None
        self.exploration_encoder = None
        if teacher_encoder is not None:
            teacher_shapes["factor"] = self._match_factor_size(
                self._build_teacher_encoder(teacher_shapes["features"]), student_shapes["features"]
            )
        if use_ie:
            self.inheritance_encoder, self.exploration_encoder = build_encoders(
                self.feature_split,
                student_shapes["features"],
                teacher_encoder.filters,
                synchronized=self.sync_batchnorm,
            )
        self.distillation_losses = list(distillation_losses)
        for term in self.distillation_losses:
            if hasattr(term, "build") and not getattr(term, "built", False):
                term.build(teacher_shapes, student_shapes)
        self.needs_indices = any(getattr(t, "needs_indices", False) for t in distillation_losses)
        self.built = True

    def _build_teacher_encoder(self, teacher_features):
        """Builds and freezes the teacher encoder; returns the teacher factor's shape."""
        encoder = self.teacher_encoder
        if not encoder.built:
            encoder.build(teacher_features)
        encoder.trainable = False
        return tuple(encoder.compute_output_shape(teacher_features))

    def _match_factor_size(self, teacher_factor, student_features):
        """The teacher factor's shape as the losses see it: resized to the student's spatial
        size when asked, else unchanged (an IE run then requires equal sizes)."""
        if tuple(teacher_factor[1:3]) == tuple(student_features[1:3]):
            return teacher_factor
        if self.resize_teacher_factor:
            self.factor_size = tuple(student_features[1:3])
            return (teacher_factor[0], *self.factor_size, teacher_factor[3])
        if self.use_ie:
            raise ValueError(
                f"The teacher factor of {self.teacher.name!r} is {teacher_factor[1]}x"
                f"{teacher_factor[2]} (factor {teacher_factor}) but the student "
                f"{self.student.name!r} features are {student_features[1]}x"
                f"{student_features[2]} (features {student_features}); the spatial sizes "
                "must match (or pass resize_teacher_factor=True to resize the teacher factor)."
            )
        return teacher_factor

    @property
    def checkpoint_model(self):
        """What a checkpoint of this stage holds: the bare student, never the teacher."""
        return self.student

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, **kwargs):
        """Like `keras.Model.compile`; `loss` is the student's supervised loss on logits.

        The default is sparse categorical cross-entropy from logits. A given loss must return
        per-sample values when called as `loss(labels, logits)` (any Keras loss function, or a
        `keras.losses.Loss` whose `.call` is used). Returns the distiller, so calls can chain.
        """
        self.student_loss = loss
        self.student_loss_fn = supervised_loss_fn(loss)
        return super().compile(optimizer=optimizer, metrics=metrics, **kwargs)

    def get_compile_config(self):
        config = super().get_compile_config()
        if config is not None:
            config["loss"] = serialize(self.student_loss)
        return config

    def _split_inputs(self, x, training=True):
        """(images, dataset indices or None): pipelines for CRD-like terms yield both; evaluation
        reads the images alone."""
        if not training:
            return (x[0] if isinstance(x, tuple | list) else x), None
        if isinstance(x, tuple | list):
            if len(x) != 2:
                raise ValueError(
                    f"The Distiller's inputs are a sequence of {len(x)} tensors; expected "
                    "images, or (images, example indices)."
                )
            return x[0], x[1]
        if self.needs_indices:
            raise ValueError(
                "A distillation loss needs the examples' dataset indices: feed "
                "((images, indices), labels) batches (e.g. train_dataset(..., with_index=True))."
            )
        return x, None

    def call(self, inputs, training=False):
        """The student's logits (the teacher is not run)."""
        if isinstance(inputs, tuple | list):
            inputs = inputs[0]
        return self.student(inputs, training=training)[0]

    def compute_terms(self, x, y, training):
        """Every named loss term, as this replica's share, and the student's logits."""
        if y is None:
            raise ValueError("The Distiller needs labelled batches: (inputs, labels).")
        images, indices = self._split_inputs(x, training)
        step = self._step()
        student_outputs = named_outputs(self.student, self.student(images, training=training))
        logits = student_outputs["logits"]
        ce_loss = cross_entropy_share(y, logits, self.student_loss_fn)
        terms = {"ce_loss": ce_loss}
        if not (training or self.teacher_in_evaluation):
            terms["loss"] = ce_loss
            return terms, logits
        total = loss_weights.loss_weight_at(self.student_loss_weight, step) * ce_loss
        teacher_outputs = {
            name: ops.stop_gradient(value)
            for name, value in named_outputs(
                self.teacher, self.teacher(images, training=False)
            ).items()
        }
        if self.teacher_encoder is not None:
            factor = self.teacher_encoder(teacher_outputs["features"], training=False)
            if self.factor_size is not None:
                factor = ops.image.resize(factor, self.factor_size, antialias=True)
            teacher_outputs["factor"] = ops.stop_gradient(factor)
        if self.use_ie:
            terms.update(self._ie_terms(teacher_outputs["factor"], student_outputs, training))
            total = add_ie_terms(
                total,
                terms["inheritance_loss"],
                terms["exploration_loss"],
                self.lambda_inh,
                self.lambda_exp,
                step,
            )
        batch = {"labels": y, "indices": indices, "step": step, "training": training}
        for term in self.distillation_losses:
            terms[term.name] = ops.cast(term(teacher_outputs, student_outputs, batch), "float32")
            total = total + terms[term.name]
        terms["loss"] = total
        return terms, logits

    def _ie_terms(self, teacher_factor, student_outputs, training):
        """L_inh and L_exp: both halves of the student against the same teacher factor."""
        branch = IEBranch(
            self.feature_split,
            self.inheritance_encoder,
            self.exploration_encoder,
            self.inheritance_loss,
            self.exploration_loss,
        )
        inheritance_factor, exploration_factor = branch.factors(
            student_outputs["features"], training
        )
        student_outputs["inheritance_factor"] = inheritance_factor
        student_outputs["exploration_factor"] = exploration_factor
        inheritance, exploration = branch.terms(
            inheritance_factor, exploration_factor, teacher_factor
        )
        return {"inheritance_loss": inheritance, "exploration_loss": exploration}

    def get_config(self):
        return {
            "name": self.name,
            "teacher": serialize(self.teacher),
            "student": serialize(self.student),
            "teacher_encoder": serialize(self.teacher_encoder),
            "lambda_inh": loss_weights.serialize_loss_weight(self.lambda_inh),
            "lambda_exp": loss_weights.serialize_loss_weight(self.lambda_exp),
            "student_loss_weight": loss_weights.serialize_loss_weight(self.student_loss_weight),
            "split_mode": self.feature_split.mode,
            "split_ratio": self.feature_split.ratio,
            "split_seed": self.feature_split.seed,
            "p": self.inheritance_loss.p,
            "distance_metric": self.inheritance_loss.metric,
            "distillation_losses": [serialize(term) for term in self.distillation_losses],
            "teacher_in_evaluation": self.teacher_in_evaluation,
            "sync_batchnorm": self.sync_batchnorm,
            "resize_teacher_factor": self.resize_teacher_factor,
        }

    @classmethod
    def from_config(cls, config):
        models = ("teacher", "student", "teacher_encoder", "distillation_losses")
        weights = ("lambda_inh", "lambda_exp", "student_loss_weight")
        return cls(**deserialized(config, models, weights))
