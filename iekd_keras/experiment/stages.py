"""The stages of a run, described as data, and the trainers they construct from the config.

`STAGES` is the table of every stage; `plan(config)` the ones a config runs, in order. IE-KD
(docs/method.md#training-recipe): the teacher (trained, or given as a checkpoint), its factor
auto-encoder, the IE-KD student and, with `config.baseline`, the same student alone. DML and
IE-DML (docs/method.md#ie-dml): one stage training both peers. `train.run_stage` runs any
entry the same way; `preflight` builds the same trainers before the run.

Example:
    >>> [stage.name for stage in plan(quickstart.get_config())]
    ['teacher', 'autoencoder', 'student', 'baseline']
    >>> trainer = autoencoder_trainer(config, teacher)
    >>> distiller = student_distiller(config, teacher, student, trainer.autoencoder.encoder, [])
"""

import dataclasses
from collections.abc import Callable

import keras

from iekd_keras.distillers import (
    Distiller,
    FactorAutoencoderTrainer,
    MutualDistiller,
    StandaloneTrainer,
)
from iekd_keras.experiment import records as run_records
from iekd_keras.experiment.diagnostics import FactorSimilarityLogger
from iekd_keras.experiment.evaluation import evaluate_accuracy, load_two_output_model
from iekd_keras.experiment.given_teacher import load_teacher
from iekd_keras.experiment.methods import build_distillation_losses
from iekd_keras.layers import FactorAutoencoder
from iekd_keras.models import get_model, with_taps

# The files a stage leaves in workdir/<stage>/: the summary marks a finished stage.
SUMMARY = "summary.json"
LAST = "last.keras"
BEST = "best.keras"


@dataclasses.dataclass(frozen=True)
class Recipe:
    """What a stage fits with: epochs, the initial learning rate, the epochs after which it is
    multiplied by config.optimizer.gamma, and the weight decay (None: config.optimizer's)."""

    epochs: int
    learning_rate: float
    milestones: tuple = ()
    l2_decay: float | None = None


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """One model a stage checkpoints: `best{suffix}.keras` (by its validation accuracy, or
    loss for a stage that is no classifier) and `last{suffix}.keras`. `prefix` starts its
    metric names ("peer1_"); `select` picks it from the trainer (None: the trainer's
    `checkpoint_model`)."""

    prefix: str = ""
    select: Callable | None = None

    @property
    def suffix(self):
        return f"_{self.prefix.rstrip('_')}" if self.prefix else ""


def _no_callbacks(config, data, trainer):
    return []


@dataclasses.dataclass(frozen=True)
class Stage:
    """One stage of a run, as `train.run_stage` runs it: unless finished (its summary.json
    exists), `build` a trainer and fit it with `recipe`; then `load` what it gives later
    stages and the records of its models; then `check` them.

    Attributes:
        name: the stage's directory under the workdir and its key among the outputs.
        runs: config -> whether the config runs this stage.
        load: (config, data, stage_dir, summary) -> (output, records); `records` maps a
            results entry to (model name, model, summary), the model counted for its
            trainable parameters.
        build: (config, data, outputs of the earlier stages) -> trainer; None for a stage
            with nothing to train (summary None).
        recipe: config -> Recipe.
        classifier: its models are classifiers: accuracy metrics, best by val accuracy.
        checkpoints: the models it checkpoints.
        callbacks: (config, data, trainer) -> callbacks of this stage's own.
        check: (config, data, records) -> None, raising when later stages must not run.
        serves: (config, output) -> the model exported for serving; None: none of its models.
    """

    name: str
    runs: Callable
    load: Callable
    build: Callable | None = None
    recipe: Callable | None = None
    classifier: bool = True
    checkpoints: tuple = (Checkpoint(),)
    callbacks: Callable = _no_callbacks
    check: Callable | None = None
    serves: Callable | None = None


# ------------------------------------------------------------------------------------------
# The trainers (shared with preflight)


def tapped(model, taps):
    """The model with its named intermediate outputs added (one forward pass)."""
    return with_taps(model, list(taps)) if taps else model


def new_model(name, data, seed):
    """A freshly initialised model; the IE-KD student and the baseline share their seed, so
    both start from the same weights."""
    keras.utils.set_random_seed(seed)
    return get_model(name, num_classes=data.num_classes, input_shape=data.input_shape)


def autoencoder_trainer(config, teacher):
    """Stage `autoencoder`: the teacher's factor auto-encoder, fitted by reconstruction."""
    return FactorAutoencoderTrainer(
        teacher,
        autoencoder=FactorAutoencoder(config.autoencoder.factor_channels, name="autoencoder"),
        reconstruction=config.autoencoder.reconstruction,
    )


def distillation_terms(config, num_train_examples):
    """The extra loss terms of `config.distillation_losses` (CRD gets the dataset size)."""
    return build_distillation_losses(config.distillation_losses, num_train_examples)


def student_distiller(config, teacher, student, teacher_encoder, terms):
    """Stage `student`: the IE-KD Distiller over the tapped teacher and student."""
    return Distiller(
        tapped(teacher, config.teacher.taps),
        tapped(student, config.student.taps),
        teacher_encoder,
        distillation_losses=terms,
        **config.distiller.to_dict(),
    )


def mutual_distiller(config, peer1, peer2):
    """Stage `mutual` (method "dml"): both peers, with config.mutual and the split settings of
    config.distiller."""
    mutual, distiller = config.mutual, config.distiller
    return MutualDistiller(
        peer1,
        peer2,
        kl_weight=mutual.kl_weight,
        temperature=mutual.temperature,
        lambda_inh=mutual.lambda_inh,
        lambda_exp=mutual.lambda_exp,
        peer_factor=mutual.peer_factor,
        factor_channels=mutual.factor_channels,
        reconstruction=mutual.reconstruction,
        split_mode=distiller.split_mode,
        split_ratio=distiller.split_ratio,
        split_seed=distiller.split_seed,
        p=distiller.p,
        distance_metric=distiller.distance_metric,
        update=mutual.update_mode,
    )


def saved_autoencoder(path):
    """The FactorAutoencoder layer of a saved auto-encoder stage checkpoint."""
    wrapper = keras.saving.load_model(path, compile=False)
    return next(layer for layer in wrapper.layers if isinstance(layer, FactorAutoencoder))


# ------------------------------------------------------------------------------------------
# Stage 0: the teacher


def _build_teacher(config, data, outputs):
    return StandaloneTrainer(new_model(config.teacher.model, data, config.seed))


def _teacher_recipe(config):
    optimizer = config.optimizer
    return Recipe(
        config.teacher.epochs,
        optimizer.learning_rate,
        optimizer.milestones,
        config.teacher.l2_decay,
    )


def _load_trained_teacher(config, data, stage_dir, summary):
    """The checkpoint config.teacher.select names, recorded as the summary's `distilled_from`
    (which file, its 1-based epoch and test accuracy)."""
    choice = selected_teacher_checkpoint(config.teacher, stage_dir)
    teacher = load_two_output_model(stage_dir / choice["file"], "teacher")
    return teacher, {
        "teacher": (config.teacher.model, teacher, {**summary, "distilled_from": choice})
    }


def _load_given_teacher(config, data, stage_dir, summary):
    """config.teacher.checkpoint, evaluated on the test split."""
    checkpoint = config.teacher.checkpoint
    teacher = load_teacher(checkpoint, config.teacher, data)
    accuracy = evaluate_accuracy(teacher, data, config.eval_batch_size)
    summary = {
        "loaded_from": str(checkpoint),
        "best_test_accuracy": accuracy,
        "last_test_accuracy": accuracy,
        "distilled_from": {
            "select": "checkpoint",
            "file": str(checkpoint),
            "epoch": None,
            "test_accuracy": accuracy,
        },
    }
    # The loaded model's own name: a given file need not be config.teacher.model.
    return teacher, {"teacher": (teacher.name, teacher, summary)}


def selected_teacher_checkpoint(teacher_config, stage_dir):
    """{"select", "file", "epoch", "test_accuracy"} of the teacher the student learns from.

    "best": best.keras, the first epoch of the highest test accuracy (StageCheckpoint saves
    only strict improvements), as the released code's model.pth.tar, which it writes only from
    its save interval on: a best epoch before `select_from_epoch` is refused. "last":
    last.keras, the final epoch.

    Example:
        >>> selected_teacher_checkpoint(config.teacher, Path("runs/cifar100/teacher"))
        {'select': 'best', 'file': 'best.keras', 'epoch': 137, 'test_accuracy': 0.7291}
    """
    select = teacher_config.select
    choice = {"select": select, "file": BEST if select == "best" else LAST}
    rows = run_records.read_csv_log(stage_dir / "log.csv")
    accuracies = [row["val_accuracy"] for row in rows if "val_accuracy" in row]
    if not accuracies:  # a teacher directory without its log: nothing to check or record
        return {**choice, "epoch": None, "test_accuracy": None}
    epoch = len(accuracies) if select == "last" else accuracies.index(max(accuracies)) + 1
    select_from = teacher_config.select_from_epoch
    if select == "best" and epoch < select_from:
        raise ValueError(
            f"The teacher's best test accuracy ({accuracies[epoch - 1]:.2%}) came at epoch "
            f"{epoch}, before config.teacher.select_from_epoch={select_from}, so, as in the "
            "released code, there is no best checkpoint to distil from; expected a best epoch "
            "at or after it: rerun with config.teacher.select='last' or a lower "
            "select_from_epoch (and --allow_config_change; the trained teacher is kept)."
        )
    return {**choice, "epoch": epoch, "test_accuracy": accuracies[epoch - 1]}


def teacher_sanity_gate(config, data, records):
    """Stops before distillation when the teacher is barely better than chance."""
    accuracy = records["teacher"].get("last_test_accuracy")
    if config.teacher.skip_sanity_check or accuracy is None:
        return
    floor = config.teacher.min_accuracy
    floor = 2.0 / data.num_classes if floor is None else floor
    if accuracy < floor:
        raise ValueError(
            f"The teacher reaches {accuracy:.2%} test accuracy, below the sanity floor of "
            f"{floor:.2%} (chance is {1 / data.num_classes:.2%}); distilling from it would "
            "waste the run. Train it longer, check config.teacher, or set "
            "config.teacher.min_accuracy / config.teacher.skip_sanity_check=True."
        )


# ------------------------------------------------------------------------------------------
# Stage 1: the teacher's auto-encoder


def _build_autoencoder(config, data, outputs):
    return autoencoder_trainer(config, outputs["teacher"])


def _autoencoder_recipe(config):
    return Recipe(config.autoencoder.epochs, config.autoencoder.learning_rate)


def _load_autoencoder(config, data, stage_dir, summary):
    autoencoder = saved_autoencoder(stage_dir / LAST)
    name = f"factor{config.autoencoder.factor_channels}"
    return autoencoder, {"autoencoder": (name, autoencoder, summary)}


# ------------------------------------------------------------------------------------------
# Stage 2: the IE-KD student, and the same student alone


def _build_student(config, data, outputs):
    student = new_model(config.student.model, data, config.seed + 1)
    terms = distillation_terms(config, data.num_train_examples)
    encoder = outputs["autoencoder"].encoder
    return student_distiller(config, outputs["teacher"], student, encoder, terms)


def _build_baseline(config, data, outputs):
    return StandaloneTrainer(new_model(config.student.model, data, config.seed + 1))


def _student_recipe(config):
    """The IE-KD student and the baseline share one recipe: the student's epochs and the LR
    schedule of config.optimizer."""
    optimizer = config.optimizer
    return Recipe(config.student.epochs, optimizer.learning_rate, optimizer.milestones)


def _load_student(config, data, stage_dir, summary):
    """The stage's last student."""
    student = load_two_output_model(stage_dir / LAST, f"{stage_dir.name} student")
    return student, {stage_dir.name: (config.student.model, student, summary)}


def _factor_similarity(config, data, trainer):
    """The paper's CKA diagnostic on a fixed batch of test images, logged every epoch."""
    if not trainer.use_ie:
        return []
    images, _ = next(iter(data.test_dataset(min(256, config.eval_batch_size))))
    return [FactorSimilarityLogger(images)]


# ------------------------------------------------------------------------------------------
# DML / IE-DML: both peers in one stage

PEERS = (1, 2)


def _build_mutual(config, data, outputs):
    peer1 = new_model(config.mutual.peer1, data, config.seed)
    peer2 = new_model(config.mutual.peer2, data, config.seed + 1)
    return mutual_distiller(config, peer1, peer2)


def _mutual_recipe(config):
    optimizer = config.optimizer
    return Recipe(config.mutual.epochs, optimizer.learning_rate, optimizer.milestones)


def _load_peers(config, data, stage_dir, summary):
    """Both last peers, each recorded with its own accuracies."""
    peers, records = [], {}
    for index in PEERS:
        peer = load_two_output_model(stage_dir / f"last_peer{index}.keras", f"peer {index}")
        peers.append(peer)
        name = config.mutual[f"peer{index}"]
        records[f"peer{index}"] = (name, peer, _peer_summary(summary, f"peer{index}_"))
    return tuple(peers), records


def _peer_summary(summary, prefix):
    return {
        "best_test_accuracy": summary[f"{prefix}best_test_accuracy"],
        "last_test_accuracy": summary[f"{prefix}last_test_accuracy"],
        "wall_time_s": summary.get("wall_time_s", 0.0),
        "epochs": summary.get("epochs"),
        "final_logs": summary.get("final_logs", {}),
    }


def _select_peer(index):
    return lambda mutual: mutual.peers[index - 1]


# ------------------------------------------------------------------------------------------
# The table


def _ie_kd(config):
    return config.method != "dml"


STAGES = (
    Stage(
        "teacher",
        runs=lambda config: _ie_kd(config) and not config.teacher.checkpoint,
        build=_build_teacher,
        recipe=_teacher_recipe,
        load=_load_trained_teacher,
        check=teacher_sanity_gate,
    ),
    Stage(
        "teacher",  # given: nothing to train
        runs=lambda config: _ie_kd(config) and bool(config.teacher.checkpoint),
        load=_load_given_teacher,
        check=teacher_sanity_gate,
    ),
    Stage(
        "autoencoder",
        runs=_ie_kd,
        build=_build_autoencoder,
        recipe=_autoencoder_recipe,
        load=_load_autoencoder,
        classifier=False,
    ),
    Stage(
        "student",
        runs=_ie_kd,
        build=_build_student,
        recipe=_student_recipe,
        load=_load_student,
        callbacks=_factor_similarity,
        serves=lambda config, student: student,
    ),
    Stage(
        "baseline",
        runs=lambda config: _ie_kd(config) and config.baseline,
        build=_build_baseline,
        recipe=_student_recipe,
        load=_load_student,
    ),
    Stage(
        "mutual",
        runs=lambda config: config.method == "dml",
        build=_build_mutual,
        recipe=_mutual_recipe,
        load=_load_peers,
        checkpoints=tuple(Checkpoint(f"peer{i}_", _select_peer(i)) for i in PEERS),
        serves=lambda config, peers: peers[config.mutual.export_peer - 1],
    ),
)


def plan(config):
    """The stages `config` runs, in order.

    Example:
        >>> [stage.name for stage in plan(quickstart_dml.get_config())]
        ['mutual']
    """
    return tuple(stage for stage in STAGES if stage.runs(config))
