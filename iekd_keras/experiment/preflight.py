"""Fail fast: build every model of a run and check every pairing before any stage trains.

`check_run` constructs what the stages will construct (the teacher, or the checkpoint it is
loaded from; the factor auto-encoder; the tapped student; each distillation term; the
Distiller; for method "dml" both peers and the MutualDistiller) and runs ONE forward of each
stage's loss terms on two images of the data's shape. A run that cannot complete is refused
with a `ConfigError` sentence that names the config keys, their values and what was expected,
before anything is trained or written. Finished stages (a `summary.json` in the workdir) are
not rebuilt: their checkpoints are loaded where a remaining stage needs them.

The check leaves no trace on the run: Keras's name counters and the Python and NumPy random
states are restored, and the throwaway models are never seeded (the stages seed their own).
"""

import contextlib
import copy
import gc
import inspect
import random
from pathlib import Path

import numpy as np
from keras.src.backend.common import global_state
from keras.src.random import seed_generator

from iekd_keras.data import build_augmentation_layers
from iekd_keras.distillers.model_checks import named_output_shapes, two_output_shapes
from iekd_keras.experiment import stages as stage_objects
from iekd_keras.experiment.config_checks import ConfigError, check_milestones, complete_config
from iekd_keras.experiment.evaluation import load_two_output_model
from iekd_keras.experiment.given_teacher import load_teacher
from iekd_keras.experiment.methods import build_distillation_losses
from iekd_keras.experiment.stages import BEST, LAST, SUMMARY
from iekd_keras.layers import FeatureSplit
from iekd_keras.losses import ContrastiveRepresentationDistillation
from iekd_keras.losses import weights as loss_weights
from iekd_keras.models import get_model

# Keras's counters of auto-generated names ("dense_3"): restored so that names do not shift.
_NAME_UIDS = "object_name_uids"


def check_run(config, data, workdir=None, replicas=1):
    """Raises ConfigError (FileNotFoundError for a missing teacher checkpoint) when the run of
    `config` on `data` cannot complete; returns None when every remaining stage can start.

    Args:
        config: the run's `ml_collections.ConfigDict`.
        data: the dataset, or any object with `name`, `input_shape`, `num_classes` and
            `num_train_examples` (no image is read; `train_dataset`'s signature is consulted
            when present).
        workdir: the run's directory, for the stages already finished (None: none is).
        replicas: the replicas the global batches are split across.

    Example:
        >>> check_run(quickstart.get_config(), load_digits(16), "runs/quickstart")
    """
    config = complete_config(config)
    check_milestones(config)
    check_batch_split(config, replicas)
    pending = [s.name for s in stage_objects.plan(config) if not _finished(workdir, s.name)]
    with _leaves_no_state():
        _check_data_options(config, data)
        if "mutual" in pending:
            _check_mutual(config, data)
        elif config.method != "dml":
            _check_distillation(config, data, workdir, pending)


def check_batch_split(config, replicas):
    """The global training and evaluation batches split evenly across the replicas.

    Example:
        >>> check_batch_split(config, strategy.num_replicas_in_sync)
    """
    for key in ("batch_size", "eval_batch_size"):
        if config[key] % replicas:
            raise ConfigError(
                f"config.{key}={config[key]} is not divisible by the {replicas} replicas of the "
                "distribution strategy; use a multiple of the replica count."
            )


@contextlib.contextmanager
def _leaves_no_state():
    """On exit, Keras's name counters, its global seed generator and the Python and NumPy
    random states are as they were on entry; the throwaway objects are collected."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    names = copy.deepcopy(global_state.get_global_attribute(_NAME_UIDS))
    generator = global_state.get_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR)
    generator_state = None if generator is None else np.array(generator.state.value)
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
        global_state.set_global_attribute(_NAME_UIDS, names)
        global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, generator)
        if generator is not None:
            generator.state.assign(generator_state)
        gc.collect()


def _finished(workdir, stage):
    return workdir is not None and (Path(workdir) / stage / SUMMARY).exists()


def _train_dataset_takes(data, argument):
    """Whether `data.train_dataset` accepts `argument` (True when it cannot be inspected)."""
    train_dataset = getattr(data, "train_dataset", None)
    if train_dataset is None:
        return True
    return argument in inspect.signature(train_dataset).parameters


def _check_data_options(config, data):
    specs = tuple(config.data.augmentation)
    if not specs:
        return
    if not _train_dataset_takes(data, "augmentation"):
        raise ConfigError(
            f"config.data.augmentation={specs!r} needs a dataset that applies extra "
            f"augmentation layers, but {data.name!r} ({type(data).__name__}) takes none; leave "
            "config.data.augmentation empty for this dataset."
        )
    try:
        build_augmentation_layers(specs)
    except (ImportError, TypeError, ValueError) as error:
        raise ConfigError(f"config.data.augmentation={specs!r} cannot be built: {error}") from None


# ------------------------------------------------------------------------------------------
# Models


def _new_model(config, key, data):
    """A fresh, unseeded model of the name at config `key` for the data's images and classes."""
    name = config
    for part in key.split("."):
        name = name[part]
    shape = tuple(data.input_shape)
    try:
        model = get_model(name, num_classes=data.num_classes, input_shape=shape)
        two_output_shapes(model, f"config.{key}")
    except ValueError as error:
        raise ConfigError(
            f"config.{key}={name!r} cannot be built for the {shape} images and "
            f"{data.num_classes} classes of the dataset {data.name!r}: {error}"
        ) from None
    return model


def _teacher_source(config):
    checkpoint = config.teacher.checkpoint
    if checkpoint:
        return f"config.teacher.checkpoint={checkpoint!r}"
    return f"config.teacher.model={config.teacher.model!r}"


def _teacher(config, data, workdir):
    """The teacher the remaining stages use: loaded from config.teacher.checkpoint or from the
    finished teacher stage, else a fresh model of config.teacher.model."""
    checkpoint = config.teacher.checkpoint
    if checkpoint:
        return _loaded_teacher(checkpoint, _teacher_source(config), data, config.teacher)
    if _finished(workdir, "teacher"):
        selected = BEST if config.teacher.select == "best" else LAST
        path = Path(workdir) / "teacher" / selected
        return _loaded_teacher(path, f"The finished teacher stage's {str(path)!r}", data)
    return _new_model(config, "teacher.model", data)


def _loaded_teacher(path, source, data, teacher_config=None):
    """The teacher at `path`; with `teacher_config`, config.teacher.checkpoint, which may also be
    a plain classifier (experiment.given_teacher)."""
    try:
        if teacher_config is None:
            teacher = load_two_output_model(path, "teacher")
        else:
            teacher = load_teacher(path, teacher_config, data)
    except FileNotFoundError:
        raise
    except ValueError as error:
        raise ConfigError(f"{source} is not a usable teacher: {error}") from None
    classes = teacher.outputs[0].shape[-1]
    if classes != data.num_classes:
        raise ConfigError(
            f"{source} predicts {classes} classes but the dataset {data.name!r} has "
            f"{data.num_classes}; expected a teacher trained on this dataset's classes."
        )
    takes, given = tuple(teacher.inputs[0].shape[1:]), tuple(data.input_shape)
    if any(t is not None and t != g for t, g in zip(takes, given, strict=False)) or len(
        takes
    ) != len(given):
        raise ConfigError(
            f"{source} takes images of shape {takes} but the dataset {data.name!r} gives "
            f"{given}; expected a teacher for these images (config.data.image_size sets their "
            "size where the dataset allows)."
        )
    return teacher


def _tapped(config, role, model, source):
    taps = tuple(config[role].taps)
    try:
        return stage_objects.tapped(model, taps)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"config.{role}.taps={taps!r} do not fit {source}: {error}") from None


def _teacher_encoder(config, data, workdir, teacher):
    """The teacher's factor encoder: the auto-encoder stage's own (built and run once) while
    that stage remains, else the one the finished stage saved."""
    if _finished(workdir, "autoencoder"):
        return _saved_encoder(config, workdir, teacher)
    key = (
        f"config.autoencoder (factor_channels={config.autoencoder.factor_channels}, "
        f"reconstruction={config.autoencoder.reconstruction!r})"
    )
    trainer = _built(key, _teacher_source(config), stage_objects.autoencoder_trainer)(
        config, teacher
    )
    _one_forward(trainer, data, "autoencoder", evaluation=False)  # evaluates as it trains
    return trainer.autoencoder.encoder


def _saved_encoder(config, workdir, teacher):
    path = Path(workdir) / "autoencoder" / LAST
    encoder = stage_objects.saved_autoencoder(path).encoder
    expected = teacher.outputs[1].shape[-1]
    takes = encoder.convs[0].kernel.shape[-2]
    if takes != expected:
        raise ConfigError(
            f"The finished auto-encoder stage's {str(path)!r} encodes {takes}-channel features "
            f"but {_teacher_source(config)} gives {expected} channels; expected the "
            "auto-encoder of this teacher (use a fresh --workdir)."
        )
    return encoder


def _built(key, context, build):
    """`build`, with any ValueError it raises turned into a ConfigError naming `key`."""

    def checked(*args):
        try:
            return build(*args)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"{key} does not fit {context}: {error}") from None

    return checked


# ------------------------------------------------------------------------------------------
# IE-KD: teacher -> auto-encoder -> student (+ baseline)


def _check_distillation(config, data, workdir, pending):
    """The IE-KD stages of `pending` (the stages of stages.plan not finished in the workdir)."""
    teacher = None
    if config.teacher.checkpoint or {"teacher", "autoencoder", "student"} & set(pending):
        teacher = _teacher(config, data, workdir)
    if "student" in pending:
        encoder = _teacher_encoder(config, data, workdir, teacher)
        _check_student(config, data, teacher, encoder)
    elif "autoencoder" in pending:
        _teacher_encoder(config, data, workdir, teacher)
    if "baseline" in pending and "student" not in pending:
        _new_model(config, "student.model", data)


def _ie_switched_on(lambda_inh, lambda_exp):
    return loss_weights.is_switched_on(lambda_inh) or loss_weights.is_switched_on(lambda_exp)


def _check_student(config, data, teacher, encoder):
    student = _new_model(config, "student.model", data)
    teacher_source = _teacher_source(config)
    student_source = f"config.student.model={config.student.model!r}"
    teacher_shapes = named_output_shapes(
        _tapped(config, "teacher", teacher, teacher_source), "teacher"
    )
    student_shapes = named_output_shapes(
        _tapped(config, "student", student, student_source), "student"
    )
    teacher_shapes["factor"] = tuple(encoder.compute_output_shape(teacher_shapes["features"]))
    if config.distiller.resize_teacher_factor:  # the Distiller resizes it to the student's size
        factor = teacher_shapes["factor"]
        teacher_shapes["factor"] = (factor[0], *student_shapes["features"][1:3], factor[3])
    _check_ie_terms(
        config,
        data,
        (teacher_source, teacher_shapes["features"]),
        (student_source, student_shapes["features"]),
    )
    sources = (
        f"{teacher_source} (taps {tuple(config.teacher.taps)!r}, a factor of "
        f"config.autoencoder.factor_channels={config.autoencoder.factor_channels} channels) "
        f"and {student_source} (taps {tuple(config.student.taps)!r})"
    )
    terms = _distillation_terms(config, data, teacher_shapes, student_shapes, sources)
    trainer = _built("config.distiller", sources, stage_objects.student_distiller)(
        config, teacher, student, encoder, terms
    )
    _one_forward(trainer, data, "student", with_indices=trainer.needs_indices)


def _check_ie_terms(config, data, teacher, student):
    """With the IE terms on, the (source, feature shape) of the teacher and of the student have
    equal spatial sizes, and the student's channels split into two non-empty parts."""
    distiller = config.distiller
    if not _ie_switched_on(distiller.lambda_inh, distiller.lambda_exp):
        return
    weights = (
        f"config.distiller.lambda_inh={distiller.lambda_inh}, lambda_exp={distiller.lambda_exp}"
    )
    if not distiller.resize_teacher_factor:
        _check_spatial_sizes(teacher, student, data, weights)
    _check_split(config, *student)


def _check_spatial_sizes(first, second, data, weights):
    (first_source, first_shape), (second_source, second_shape) = first, second
    if tuple(first_shape[1:3]) == tuple(second_shape[1:3]):
        return
    height, width = tuple(data.input_shape)[:2]
    raise ConfigError(
        f"{second_source} gives {second_shape[1]}x{second_shape[2]} features but "
        f"{first_source} gives {first_shape[1]}x{first_shape[2]} on the dataset's "
        f"{height}x{width} images; the IE terms ({weights}) need equal spatial sizes: choose "
        "models whose last feature maps have the same size, or set both weights to 0."
    )


def _check_split(config, source, features):
    ratio, channels = config.distiller.split_ratio, features[-1]
    try:
        FeatureSplit(config.distiller.split_mode, ratio).inheritance_channels(channels)
    except ValueError:
        inheriting = int(channels * ratio)
        raise ConfigError(
            f"config.distiller.split_ratio={ratio} splits the {channels} feature channels of "
            f"{source} into {inheriting} inheritance and {channels - inheriting} exploration "
            "channels; each part needs at least one channel: choose a ratio that leaves both "
            f"parts at least one of the {channels}."
        ) from None


def _distillation_terms(config, data, teacher_shapes, student_shapes, sources):
    """Each term of config.distillation_losses, built on the run's output shapes."""
    terms = []
    for index, spec in enumerate(config.distillation_losses):
        spec = dict(spec)
        key = f"config.distillation_losses[{index}] (type {spec['type']!r})"
        if spec["type"] == "crd":
            _check_crd_examples(key, dict(spec.get("kwargs") or {}), data)
        try:
            (term,) = build_distillation_losses([spec], data.num_train_examples)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"{key} cannot be built: {error}") from None
        if getattr(term, "needs_indices", False) and not _train_dataset_takes(data, "with_index"):
            raise ConfigError(
                f"{key} needs each training example's dataset index, but the dataset "
                f"{data.name!r} ({type(data).__name__}) cannot yield indices; use an in-memory "
                "dataset (digits, cifar10, cifar100, image_folder) or drop this term."
            )
        if hasattr(term, "build"):
            _built(key, sources, term.build)(teacher_shapes, student_shapes)
        terms.append(term)
    return terms


def _check_crd_examples(key, kwargs, data):
    """CRD keeps one memory row per training example and draws its negatives among them."""
    examples = data.num_train_examples
    if kwargs.get("num_examples", examples) != examples:
        raise ConfigError(
            f"{key} has num_examples={kwargs['num_examples']} memory rows but the dataset "
            f"{data.name!r} has {examples} training examples; leave num_examples out of its "
            "kwargs (the run sets it to the dataset size)."
        )
    default = inspect.signature(ContrastiveRepresentationDistillation).parameters
    negatives = kwargs.get("num_negatives", default["num_negatives"].default)
    if isinstance(negatives, int) and negatives >= examples:
        raise ConfigError(
            f"{key} contrasts each example with num_negatives={negatives} others but the "
            f"dataset {data.name!r} has only {examples} training examples; set num_negatives "
            f"in its kwargs below {examples}."
        )


# ------------------------------------------------------------------------------------------
# DML / IE-DML


def _check_mutual(config, data):
    peers = [_new_model(config, f"mutual.peer{index}", data) for index in (1, 2)]
    sources = [f"config.mutual.peer{i}={config.mutual[f'peer{i}']!r}" for i in (1, 2)]
    mutual = config.mutual
    if _ie_switched_on(mutual.lambda_inh, mutual.lambda_exp):
        shapes = [named_output_shapes(peer, "peer")["features"] for peer in peers]
        _check_spatial_sizes(
            (sources[0], shapes[0]),
            (sources[1], shapes[1]),
            data,
            f"config.mutual.lambda_inh={mutual.lambda_inh}, lambda_exp={mutual.lambda_exp}",
        )
        for source, features in zip(sources, shapes, strict=True):
            _check_split(config, source, features)
    trainer = _built("config.mutual", " and ".join(sources), stage_objects.mutual_distiller)(
        config, *peers
    )
    _one_forward(trainer, data, "mutual")


# ------------------------------------------------------------------------------------------
# One forward


def _one_forward(trainer, data, stage, with_indices=False, evaluation=True):
    """The stage's loss terms on two images, in training mode and (`evaluation`) in inference
    mode."""
    shape = tuple(data.input_shape)
    images = np.random.default_rng(0).normal(size=(2, *shape)).astype("float32")
    labels = (np.arange(2) % data.num_classes).astype("int32")
    inputs = (images, np.arange(2, dtype="int64")) if with_indices else images
    try:
        trainer.compute_terms(inputs, labels, training=True)
        if evaluation:
            trainer.compute_terms(inputs, labels, training=False)
    except Exception as error:  # noqa: BLE001 - whatever fails here would stop the stage
        raise ConfigError(
            f"The {stage} stage cannot run: its loss terms fail on two {shape} images "
            f"({type(error).__name__}: {error})."
        ) from error
