"""train_and_evaluate: teacher -> teacher auto-encoder -> IE-KD student (+ the student alone)."""

import importlib.metadata
import json
import platform
import shutil
import time
from pathlib import Path

import keras
import numpy as np

from iekd_keras.data import build_augmentation_layers, load_dataset
from iekd_keras.distillers import (
    Distiller,
    FactorAutoencoderTrainer,
    StandaloneTrainer,
)
from iekd_keras.distribute import multi_worker
from iekd_keras.distribute.batchnorm_sync import set_synchronized
from iekd_keras.distribute.strategies import (
    check_jit_compile,
    make_strategy,
    scaled_learning_rate,
    set_precision,
)
from iekd_keras.experiment import records as run_records
from iekd_keras.experiment import stages as stage_objects
from iekd_keras.experiment.callbacks import (
    NonFiniteLossGuard,
    RestoredStateCheck,
    StageCheckpoint,
    ThroughputLogger,
)
from iekd_keras.experiment.config_checks import validate_config
from iekd_keras.experiment.diagnostics import FactorSimilarityLogger
from iekd_keras.experiment.evaluation import load_two_output_model
from iekd_keras.experiment.interruption import (
    EpochTracker,
    InterruptSafeBackupAndRestore,
    name_interruption,
)
from iekd_keras.experiment.methods import build_distillation_losses
from iekd_keras.experiment.preflight import BEST, LAST, SUMMARY, check_run
from iekd_keras.experiment.records import prepare_workdir
from iekd_keras.layers import FactorAutoencoder
from iekd_keras.models import get_model
from iekd_keras.optimizers import CoupledWeightDecaySGD
from iekd_keras.optimizers.schedules import epoch_step_decay


def trainable_parameters(model):
    """Trainable parameters (Keras's count_params() also counts BatchNorm moving statistics)."""
    return int(sum(np.prod(v.shape) for v in model.trainable_weights))


def train_and_evaluate(config, workdir, data=None, allow_config_change=False):
    """Runs every stage a config asks for under `workdir` and returns the results dict.

    Stages, each in `workdir/<stage>/`: `teacher` (trained, or loaded from
    `config.teacher.checkpoint`), `autoencoder` (the teacher factor,
    docs/method.md#stage-1-teacher-auto-encoder),
    `student` (IE-KD) and, when `config.baseline`, `baseline` (the same student alone, same
    recipe). A finished stage is skipped when its `summary.json` exists; an interrupted one
    resumes from its last whole epoch (BackupAndRestore). Each stage keeps `best.keras` and
    `last.keras` (the bare model: never the teacher inside a student checkpoint), `log.csv`
    and TensorBoard logs under `workdir/tensorboard/<stage>`. At the end `results.json` is
    written and a table printed; with `config.export` the student is exported for serving.

    Args:
        config: an `ml_collections.ConfigDict` as in `configs/quickstart.py`.
        workdir: directory of the run (created).
        data: an `ImageData`-like dataset to use instead of `config.data`.
        allow_config_change: resume a workdir recorded with a different config.

    Example:
        >>> from configs import quickstart
        >>> results = train_and_evaluate(quickstart.get_config(), "runs/quickstart")
    """
    # MultiWorkerMirroredStrategy must exist before TensorFlow runs any op: create it first.
    strategy = make_strategy(config.distribution)
    validate_config(config)
    chief = multi_worker.is_chief()
    if not chief:
        # Other workers keep their own backups and bookkeeping; only the chief's files are the
        # run's checkpoints, logs, results and exports.
        workdir = Path(workdir) / "workers" / str(multi_worker.task()[1])
    set_precision(config.precision)
    check_jit_compile(config.jit_compile, strategy, config.get("deterministic", False))
    data = data if data is not None else load_dataset(config.data)
    # Fail fast: every model of the remaining stages is built and paired before any stage
    # trains or writes (the workdir is only read); it seeds nothing and leaves no names behind.
    check_run(config, data, workdir, strategy.num_replicas_in_sync)
    workdir = prepare_workdir(workdir, config, allow_config_change)
    _seed_everything(config)
    started = time.perf_counter()
    stages = {}
    with strategy.scope():
        if config.method == "dml":
            peers = _mutual_stage(config, workdir, data, stages)
            student = peers[config.mutual.export_peer - 1]
        else:
            teacher, stages["teacher"] = _teacher_stage(config, workdir, data)
            _teacher_sanity_gate(config, data, stages["teacher"])
            autoencoder, stages["autoencoder"] = _autoencoder_stage(config, workdir, data, teacher)
            student, stages["student"] = _student_stage(config, workdir, data, teacher, autoencoder)
            if config.baseline:
                _, stages["baseline"] = _baseline_stage(config, workdir, data)
        device_count = strategy.num_replicas_in_sync

    results = {
        "dataset": data.name,
        "seed": config.seed,
        "global_batch_size": config.batch_size,
        "device_count": device_count,
        "precision": config.precision,
        "versions": _versions(),
        "stages": stages,
        "wall_time_s": time.perf_counter() - started,
        "config": config.to_dict(),
    }
    if config.get("export", False) and chief:
        from iekd_keras.experiment.export import export_student

        paths = export_student(student, workdir / "export", data.mean, data.std)
        results["export"] = {key: str(path) for key, path in paths.items()}
    run_records.write_json_atomically(workdir / "results.json", results)
    if chief:
        print(run_records.format_table(results))
    return results


def _seed_everything(config):
    """Seeds Python, numpy and the backend; with `config.deterministic`, op determinism too."""
    keras.utils.set_random_seed(config.seed)
    if config.get("deterministic", False) and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def _teacher_sanity_gate(config, data, summary):
    """Stops before distillation when the teacher is barely better than chance."""
    if config.teacher.get("skip_sanity_check", False):
        return
    floor = config.teacher.get("min_accuracy")
    floor = 2.0 / data.num_classes if floor is None else floor
    accuracy = summary.get("last_test_accuracy")
    if accuracy is not None and accuracy < floor:
        raise ValueError(
            f"The teacher reaches {accuracy:.2%} test accuracy, below the sanity floor of "
            f"{floor:.2%} (chance is {1 / data.num_classes:.2%}); distilling from it would "
            "waste the run. Train it longer, check config.teacher, or set "
            "config.teacher.min_accuracy / config.teacher.skip_sanity_check=True."
        )


def _versions():
    versions = {
        "python": platform.python_version(),
        "keras": keras.__version__,
        "numpy": np.__version__,
        "backend": keras.backend.backend(),
    }
    for package in ("tensorflow", "jax"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def _optimizer(config, learning_rate, steps_per_epoch, milestones, l2_decay=None):
    learning_rate = scaled_learning_rate(
        learning_rate, config.batch_size, config.optimizer.get("scale_reference_batch_size")
    )
    schedule = epoch_step_decay(learning_rate, milestones, config.optimizer.gamma, steps_per_epoch)
    return CoupledWeightDecaySGD(
        learning_rate=schedule,
        momentum=config.optimizer.momentum,
        nesterov=config.optimizer.nesterov,
        l2_decay=config.optimizer.l2_decay if l2_decay is None else l2_decay,
    )


def _backup_epoch(backup_dir):
    """The epoch BackupAndRestore will resume from (0 without a backup)."""
    metadata = Path(backup_dir) / "training_metadata.json"
    if not metadata.exists():
        return 0
    return int(json.loads(metadata.read_text())["epoch"])


# What a classifier stage checkpoints and summarises: (name prefix, model selector). A plain
# stage has one model (its trainer's checkpoint_model); a mutual stage has one per peer.
SINGLE_MODEL = (("", None),)


def _synchronize(trainer, config):
    """With config.sync_batchnorm, every BatchNorm the stage trains works on global-batch
    statistics (frozen teachers run in inference mode, where it changes nothing)."""
    if not config.get("sync_batchnorm", False):
        return
    if keras.backend.backend() == "jax":
        # DataParallel steps work on global arrays: BatchNorm statistics are already over the
        # global batch, which is what synchronised BatchNorm gives under tf.distribute.
        return
    set_synchronized([trainer], True)


def _fit_stage(
    stage,
    trainer,
    config,
    workdir,
    data,
    epochs,
    learning_rate,
    milestones,
    l2_decay=None,
    models=SINGLE_MODEL,
):
    """Compiles and fits one stage with the standard callbacks; returns its summary.

    Each (prefix, select) of `models` gets `best{_prefix}.keras` (by its validation accuracy)
    and `last{_prefix}.keras`, and its best and last test accuracy in the summary.
    """
    stage_dir = workdir / stage
    stage_dir.mkdir(parents=True, exist_ok=True)
    batch_size = config.batch_size
    steps_per_epoch = data.steps_per_epoch(batch_size)
    classifier = not isinstance(trainer, FactorAutoencoderTrainer)
    _synchronize(trainer, config)
    trainer.compile(
        optimizer=_optimizer(config, learning_rate, steps_per_epoch, milestones, l2_decay),
        metrics=["accuracy"] if classifier else None,
        # JAX steps always compile with XLA (un-jitted JAX runs op by op); config.jit_compile
        # is TensorFlow's XLA switch.
        jit_compile=True if keras.backend.backend() == "jax" else config.get("jit_compile", False),
    )
    log_path = stage_dir / "log.csv"
    rows = run_records.read_csv_log(log_path)
    backup_dir = stage_dir / "backup"
    start_epoch = _backup_epoch(backup_dir)
    # Order matters at each epoch end: the CSV row and checkpoints are written before the
    # backup, so a kill in between makes the resumed run redo (and re-log) that epoch.
    tracker = EpochTracker(start_epoch)  # names the epoch if Ctrl-C stops the stage
    callbacks = [tracker, NonFiniteLossGuard(stage), ThroughputLogger(data.num_train_examples)]
    if getattr(trainer, "use_ie", False) and isinstance(trainer, Distiller):
        # The paper's CKA diagnostic on a fixed batch of test images, logged every epoch.
        images, _ = next(iter(data.test_dataset(min(256, config.eval_batch_size))))
        callbacks.append(FactorSimilarityLogger(images))
    for prefix, select in models:
        monitor, mode = (f"val_{prefix}accuracy", "max") if classifier else ("val_loss", "min")
        previous = [row[monitor] for row in rows if monitor in row]
        best_so_far = (max(previous) if mode == "max" else min(previous)) if previous else None
        suffix = f"_{prefix.rstrip('_')}" if prefix else ""
        callbacks += [
            StageCheckpoint(
                str(stage_dir / f"best{suffix}.keras"),
                select=select,
                monitor=monitor,
                mode=mode,
                save_best_only=True,
                initial_value_threshold=best_so_far,
            ),
            StageCheckpoint(str(stage_dir / f"last{suffix}.keras"), select=select),
        ]
    callbacks += [
        keras.callbacks.CSVLogger(str(log_path), append=True),
        keras.callbacks.TensorBoard(str(workdir / "tensorboard" / stage)),
        InterruptSafeBackupAndRestore(
            str(backup_dir), delete_checkpoint=False, double_checkpoint=True
        ),
        RestoredStateCheck(backup_dir, steps_per_epoch),
    ]
    print(
        f"[{stage}] {epochs} epochs x {steps_per_epoch} steps, global batch {batch_size}"
        + (f", resuming at epoch {start_epoch}" if start_epoch else ""),
        flush=True,
    )
    started = time.perf_counter()
    augmentation = build_augmentation_layers(config.data.get("augmentation", ()))
    extra = {"augmentation": augmentation} if augmentation else {}
    if getattr(trainer, "needs_indices", False):
        extra["with_index"] = True  # CRD-like terms need each example's dataset index
    with (
        name_interruption(stage, tracker, epochs, backup_dir),
        multi_worker.reraise_lost_worker(stage, backup_dir),
    ):
        trainer.fit(
            data.train_dataset(batch_size, config.seed, epochs, start_epoch=start_epoch, **extra),
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            validation_data=data.test_dataset(config.eval_batch_size),
            callbacks=callbacks,
            shuffle=False,  # the dataset is already shuffled, deterministically per epoch
            verbose=config.verbose,
        )
    rows = run_records.read_csv_log(log_path)
    summary = {
        "epochs": epochs,
        "steps_per_epoch": steps_per_epoch,
        "wall_time_s": time.perf_counter() - started,
        "final_logs": rows[-1] if rows else {},
    }
    if classifier:
        for prefix, _ in models:
            best, last = run_records.best_and_last(rows, f"val_{prefix}accuracy")
            summary[f"{prefix}best_test_accuracy"] = best
            summary[f"{prefix}last_test_accuracy"] = last
    run_records.write_json_atomically(stage_dir / SUMMARY, summary)
    shutil.rmtree(backup_dir, ignore_errors=True)
    return summary


def _finished(workdir, stage):
    path = workdir / stage / SUMMARY
    return json.loads(path.read_text()) if path.exists() else None


def _teacher_stage(config, workdir, data):
    """The teacher: loaded from config.teacher.checkpoint, or trained here; the student learns
    from the checkpoint config.teacher.select names, recorded as the summary's
    `distilled_from` (which file, its 1-based epoch and test accuracy)."""
    stage = "teacher"
    checkpoint = config.teacher.get("checkpoint", "")
    if checkpoint:
        teacher = load_two_output_model(checkpoint, "teacher")
        trainer = StandaloneTrainer(teacher).compile(metrics=["accuracy"])
        logs = trainer.evaluate(
            data.test_dataset(config.eval_batch_size), verbose=0, return_dict=True
        )
        accuracy = float(logs["accuracy"])
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
    else:
        summary = _finished(workdir, stage)
        if summary is None:
            teacher = _new_model(config.teacher.model, data, config.seed)
            summary = _fit_stage(
                stage,
                StandaloneTrainer(teacher),
                config,
                workdir,
                data,
                config.teacher.epochs,
                config.optimizer.learning_rate,
                config.optimizer.milestones,
                l2_decay=config.teacher.get("l2_decay"),
            )
        choice = _selected_teacher_checkpoint(config.teacher, workdir / stage)
        teacher = load_two_output_model(workdir / stage / choice["file"], "teacher")
        summary["distilled_from"] = choice
    summary.update(model=config.teacher.model, trainable_parameters=trainable_parameters(teacher))
    return teacher, summary


def _selected_teacher_checkpoint(teacher_config, stage_dir):
    """{"select", "file", "epoch", "test_accuracy"} of the teacher the student learns from.

    "best": best.keras, the first epoch of the highest test accuracy (StageCheckpoint saves
    only strict improvements), as the released code's model.pth.tar, which it writes only from
    its save interval on: a best epoch before `select_from_epoch` is refused. "last":
    last.keras, the final epoch.

    Example:
        >>> _selected_teacher_checkpoint(config.teacher, Path("runs/cifar100/teacher"))
        {'select': 'best', 'file': 'best.keras', 'epoch': 137, 'test_accuracy': 0.7291}
    """
    select = teacher_config.get("select", "last")
    choice = {"select": select, "file": BEST if select == "best" else LAST}
    rows = run_records.read_csv_log(stage_dir / "log.csv")
    accuracies = [row["val_accuracy"] for row in rows if "val_accuracy" in row]
    if not accuracies:  # a teacher directory without its log: nothing to check or record
        return {**choice, "epoch": None, "test_accuracy": None}
    epoch = len(accuracies) if select == "last" else accuracies.index(max(accuracies)) + 1
    select_from = teacher_config.get("select_from_epoch", 1)
    if select == "best" and epoch < select_from:
        raise ValueError(
            f"The teacher's best test accuracy ({accuracies[epoch - 1]:.2%}) came at epoch "
            f"{epoch}, before config.teacher.select_from_epoch={select_from}, so, as in the "
            "released code, there is no best checkpoint to distil from; expected a best epoch "
            "at or after it: rerun with config.teacher.select='last' or a lower "
            "select_from_epoch (and --allow_config_change; the trained teacher is kept)."
        )
    return {**choice, "epoch": epoch, "test_accuracy": accuracies[epoch - 1]}


def _autoencoder_stage(config, workdir, data, teacher):
    stage = "autoencoder"
    summary = _finished(workdir, stage)
    if summary is None:
        trainer = stage_objects.autoencoder_trainer(config, teacher)
        summary = _fit_stage(
            stage,
            trainer,
            config,
            workdir,
            data,
            config.autoencoder.epochs,
            config.autoencoder.learning_rate,
            milestones=(),
        )
    wrapper = keras.saving.load_model(workdir / stage / LAST, compile=False)
    autoencoder = next(layer for layer in wrapper.layers if isinstance(layer, FactorAutoencoder))
    summary.update(
        model=f"factor{config.autoencoder.factor_channels}",
        trainable_parameters=trainable_parameters(autoencoder),
    )
    return autoencoder, summary


def _student_stage(config, workdir, data, teacher, autoencoder):
    stage = "student"
    summary = _finished(workdir, stage)
    if summary is None:
        student = _new_model(config.student.model, data, config.seed + 1)
        terms = build_distillation_losses(
            config.get("distillation_losses", ()), data.num_train_examples
        )
        distiller = stage_objects.student_distiller(
            config, teacher, student, autoencoder.encoder, terms
        )
        summary = _fit_student_recipe(stage, distiller, config, workdir, data)
    return _student_result(stage, summary, config, workdir)


def _baseline_stage(config, workdir, data):
    stage = "baseline"
    summary = _finished(workdir, stage)
    if summary is None:
        trainer = StandaloneTrainer(_new_model(config.student.model, data, config.seed + 1))
        summary = _fit_student_recipe(stage, trainer, config, workdir, data)
    return _student_result(stage, summary, config, workdir)


def _fit_student_recipe(stage, trainer, config, workdir, data):
    """The IE-KD student and the baseline share one recipe: the student's epochs and the LR
    schedule of config.optimizer."""
    return _fit_stage(
        stage,
        trainer,
        config,
        workdir,
        data,
        config.student.epochs,
        config.optimizer.learning_rate,
        config.optimizer.milestones,
    )


def _student_result(stage, summary, config, workdir):
    """The stage's last student, and its summary with the model name and parameter count."""
    student = load_two_output_model(workdir / stage / LAST, f"{stage} student")
    summary.update(model=config.student.model, trainable_parameters=trainable_parameters(student))
    return student, summary


def _mutual_stage(config, workdir, data, stages):
    """DML / IE-DML: both peers from scratch in one stage; records a summary per peer."""
    stage = "mutual"
    mutual = config.mutual
    summary = _finished(workdir, stage)
    if summary is None:
        distiller = stage_objects.mutual_distiller(
            config,
            _new_model(mutual.peer1, data, config.seed),
            _new_model(mutual.peer2, data, config.seed + 1),
        )
        summary = _fit_stage(
            stage,
            distiller,
            config,
            workdir,
            data,
            mutual.epochs,
            config.optimizer.learning_rate,
            config.optimizer.milestones,
            models=(("peer1_", lambda m: m.peers[0]), ("peer2_", lambda m: m.peers[1])),
        )
    peers = []
    for index, name in ((1, mutual.peer1), (2, mutual.peer2)):
        peer = load_two_output_model(workdir / stage / f"last_peer{index}.keras", f"peer {index}")
        peers.append(peer)
        stages[f"peer{index}"] = {
            "model": name,
            "trainable_parameters": trainable_parameters(peer),
            "best_test_accuracy": summary[f"peer{index}_best_test_accuracy"],
            "last_test_accuracy": summary[f"peer{index}_last_test_accuracy"],
            "wall_time_s": summary.get("wall_time_s", 0.0),
            "epochs": summary.get("epochs"),
            "final_logs": summary.get("final_logs", {}),
        }
    return peers


def _new_model(name, data, seed):
    """A freshly initialised model; the IE-KD student and the baseline share their seed, so
    both start from the same weights."""
    keras.utils.set_random_seed(seed)
    return get_model(name, num_classes=data.num_classes, input_shape=data.input_shape)
