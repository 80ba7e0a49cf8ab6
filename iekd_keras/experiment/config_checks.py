"""Checks a run config before any work starts, with messages that name the key and the value.

Keys and types: the locked, type-safe `base_config()` refuses an unknown key or a value of
another type (`complete_config` tells which). Here: the ranges of values and the rules across
keys that a ConfigDict cannot express.
"""

import difflib

import ml_collections

from iekd_keras.data import DATASETS
from iekd_keras.distillers.mutual_distiller import PEER_FACTORS, UPDATES
from iekd_keras.distribute.strategies import PRECISIONS, STRATEGIES
from iekd_keras.experiment.export import check_formats, check_requirements
from iekd_keras.experiment.given_teacher import PREPROCESSING
from iekd_keras.experiment.recipes import base_config
from iekd_keras.layers.factor_distance import METRICS
from iekd_keras.layers.feature_split import MODES
from iekd_keras.losses.reconstruction import RECONSTRUCTIONS, RENAMED


def _positive(value):
    return value > 0


def _non_negative(value):
    return value >= 0


def _unit_interval_open(value):
    return 0 < value < 1


def _unit_interval(value):
    return 0 <= value <= 1


def _one_of(*choices):
    def check(value):
        return value in choices

    check.expected = f"one of {list(choices)}"
    return check


_positive.expected = "> 0"
_non_negative.expected = ">= 0"
_unit_interval_open.expected = "strictly between 0 and 1"
_unit_interval.expected = "between 0 and 1"

RANGES = {
    "seed": _non_negative,
    "batch_size": _positive,
    "eval_batch_size": _positive,
    "verbose": _one_of(0, 1, 2),
    "distribution": _one_of(*STRATEGIES),
    "precision": _one_of(*PRECISIONS),
    "optimizer.scale_reference_batch_size": _positive,
    "data.name": _one_of(*DATASETS),
    "data.image_size": _positive,
    "optimizer.learning_rate": _positive,
    "optimizer.momentum": _unit_interval,
    "optimizer.l2_decay": _non_negative,
    "optimizer.gamma": _positive,
    "teacher.epochs": _positive,
    "teacher.l2_decay": _non_negative,
    "teacher.min_accuracy": _non_negative,
    "teacher.select": _one_of("best", "last"),
    "teacher.select_from_epoch": _positive,
    "teacher.preprocessing": _one_of(*PREPROCESSING),
    "autoencoder.factor_channels": _positive,
    "autoencoder.epochs": _positive,
    "autoencoder.learning_rate": _positive,
    "autoencoder.reconstruction": _one_of(*RECONSTRUCTIONS),
    "student.epochs": _positive,
    "distiller.lambda_inh": _non_negative,
    "distiller.lambda_exp": _non_negative,
    "distiller.student_loss_weight": _non_negative,
    "distiller.split_mode": _one_of(*MODES),
    "distiller.split_ratio": _unit_interval_open,
    "distiller.p": _positive,
    "distiller.distance_metric": _one_of(*METRICS),
    "method": _one_of("ie_kd", "dml"),
    "mutual.epochs": _positive,
    "mutual.kl_weight": _non_negative,
    "mutual.temperature": _positive,
    "mutual.lambda_inh": _non_negative,
    "mutual.lambda_exp": _non_negative,
    "mutual.peer_factor": _one_of(*PEER_FACTORS),
    "mutual.factor_channels": _positive,
    "mutual.reconstruction": _one_of(*RECONSTRUCTIONS),
    "mutual.update_mode": _one_of(*UPDATES),
    "mutual.export_peer": _one_of(1, 2),
}


class ConfigError(ValueError):
    """A config key that is unknown, of the wrong type, or out of range."""


def validate_config(config):
    """Raises ConfigError for the first problem found; returns the config, complete.

    Unknown keys and wrong types are refused by the locked, type-safe `base_config()` that
    `config` is written over (`complete_config`). Checked here: ranges (e.g. negative lambdas,
    split ratios outside (0, 1), unknown dataset names), renamed options, milestones past the
    end, the teacher checkpoint rule, the distillation terms, the model names and the export
    formats (and, when exporting, their optional packages).

    Example:
        >>> validate_config(quickstart.get_config()).teacher.min_accuracy is None
        True
    """
    config = complete_config(config)
    _check_renamed_reconstructions(config)
    for path, check in RANGES.items():
        value = _get(config, path)
        if value is None:
            continue
        if not check(value):
            raise ConfigError(
                f"config.{path}={value!r} is out of range: expected {check.expected}."
            )
    check_milestones(config)
    if config.method != "dml" and not config.teacher.checkpoint:
        _check_teacher_select(config.teacher)  # a teacher this run trains
    _check_export_formats(config)
    _check_distillation_losses(config)
    _check_model_names(config)
    if config.data.name == "image_folder" and not config.data.directory:
        raise ConfigError("config.data.directory must be set for data.name='image_folder'.")
    return config


def complete_config(config):
    """`config` written over a fresh `base_config()`: a key it leaves out keeps the base value.

    The locked, type-safe ConfigDict refuses an unknown key or a value of another type; the
    refusal is told as a ConfigError sentence that names the key (and the closest valid one).

    Example:
        >>> complete_config({"batch_size": 64}).teacher.epochs
        160
    """
    complete = base_config()
    _write(complete, config, prefix="")
    return complete


def _write(target, source, prefix):
    for key, value in source.items():
        path = f"{prefix}{key}"
        if isinstance(target.get(key), ml_collections.ConfigDict):
            if not isinstance(value, ml_collections.ConfigDict | dict):
                raise ConfigError(f"config.{path} must be a group of keys; got {value!r}.")
            _write(target[key], value, prefix=f"{path}.")
            continue
        try:
            target[key] = value
        except KeyError:  # locked: no such key
            close = difflib.get_close_matches(key, list(target.keys()), n=1)
            hint = f" Did you mean config.{prefix}{close[0]}?" if close else ""
            raise ConfigError(
                f"Unknown config key config.{path}.{hint} Valid keys here: {sorted(target.keys())}."
            ) from None
        except TypeError:  # type-safe: another type than the base value's
            default = target[key]
            like = "or None" if default is None else f"(like the default {default!r})"
            raise ConfigError(
                f"config.{path}={value!r} has type {type(value).__name__}; expected "
                f"{target.get_type(key).__name__} {like}."
            ) from None


def _check_renamed_reconstructions(config):
    for path in ("autoencoder.reconstruction", "mutual.reconstruction"):
        value = _get(config, path)
        if isinstance(value, str) and value in RENAMED:
            raise ConfigError(f"config.{path}={value!r} {RENAMED[value]}")


def _get(config, path):
    value = config
    for part in path.split("."):
        value = value.get(part) if isinstance(value, ml_collections.ConfigDict | dict) else None
    return value


def check_milestones(config):
    """The LR milestones are increasing epochs, each before the end of every stage using them.

    Example:
        >>> check_milestones(quickstart.get_config())  # (8, 12) within 15 epochs: no error
    """
    milestones = list(config.optimizer.milestones)
    if milestones != sorted(set(milestones)) or any(
        not isinstance(m, int) or m < 1 for m in milestones
    ):
        raise ConfigError(
            f"config.optimizer.milestones={tuple(milestones)} must be strictly increasing "
            "positive epoch numbers."
        )
    for role in ("teacher", "student", "mutual"):
        epochs = config[role].epochs
        if milestones and milestones[-1] >= epochs:
            raise ConfigError(
                f"config.optimizer.milestones={tuple(milestones)} reach past "
                f"config.{role}.epochs={epochs}: the last LR drop would never happen."
            )


def _check_teacher_select(teacher):
    """A best-checkpoint rule that some epoch of the teacher's training can meet."""
    select_from = teacher.select_from_epoch
    if teacher.select == "best" and select_from > teacher.epochs:
        raise ConfigError(
            f"config.teacher.select_from_epoch={select_from} comes after the teacher's last "
            f"epoch (config.teacher.epochs={teacher.epochs}); expected at most "
            f"{teacher.epochs}, or config.teacher.select='last'."
        )


def _check_distillation_losses(config):
    from iekd_keras.experiment.methods import LOSS_TYPES, build_distillation_losses

    for index, spec in enumerate(config.distillation_losses):
        spec = dict(spec)
        if spec.get("type") not in LOSS_TYPES or set(spec) - {"type", "kwargs"}:
            raise ConfigError(
                f"config.distillation_losses[{index}]={spec} must be {{'type': one of "
                f"{sorted(LOSS_TYPES)}, 'kwargs': {{...}}}}."
            )
        try:
            # Constructing the term checks its arguments (e.g. a temperature <= 0); CRD's
            # dataset size is only known later, so any size above its negatives stands in.
            build_distillation_losses([spec], num_train_examples=10**9)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"config.distillation_losses[{index}] ({spec}): {error}") from None
    for role in ("teacher", "student"):
        taps = config[role].taps
        if not all(isinstance(name, str) for name in taps):
            raise ConfigError(f"config.{role}.taps={taps!r} must be layer names (strings).")


def _check_model_names(config):
    from iekd_keras.models import get_model

    keys = ("mutual.peer1", "mutual.peer2")
    if config.method == "ie_kd":
        keys = ("teacher.model", "student.model")
    for key in keys:
        try:
            get_model(_get(config, key), num_classes=2, input_shape=(32, 32, 3))
        except ValueError as error:
            raise ConfigError(f"config.{key}: {error}") from None


def _check_export_formats(config):
    """Known export formats; when the run exports, what they need is installed (checked now,
    not after the training)."""
    source = f"config.export_formats={tuple(config.export_formats)!r}"
    try:
        formats = check_formats(config.export_formats, source)
        if config.export:
            check_requirements(formats)
    except (ValueError, ImportError) as error:
        raise ConfigError(str(error)) from None
