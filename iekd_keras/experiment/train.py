"""train_and_evaluate: the stages of `stages.plan(config)`, each run by `run_stage`.

IE-KD: teacher -> teacher auto-encoder -> IE-KD student (+ the student alone); DML / IE-DML:
both peers in one stage.
"""

import importlib.metadata
import json
import platform
import shutil
import time
from pathlib import Path

import keras
import numpy as np

from iekd_keras.data import build_augmentation_layers, load_dataset
from iekd_keras.distribute import multi_worker
from iekd_keras.distribute.batchnorm_sync import set_synchronized
from iekd_keras.distribute.strategies import (
    check_jit_compile,
    make_strategy,
    resolve_determinism,
    scaled_learning_rate,
    set_precision,
)
from iekd_keras.experiment import records as run_records
from iekd_keras.experiment import stages
from iekd_keras.experiment.callbacks import (
    NonFiniteLossGuard,
    RestoredStateCheck,
    StageCheckpoint,
    ThroughputLogger,
)
from iekd_keras.experiment.config_checks import complete_config, validate_config
from iekd_keras.experiment.interruption import (
    EpochTracker,
    InterruptSafeBackupAndRestore,
    name_interruption,
)
from iekd_keras.experiment.preflight import check_run
from iekd_keras.experiment.records import prepare_workdir
from iekd_keras.optimizers import CoupledWeightDecaySGD
from iekd_keras.optimizers.schedules import epoch_step_decay


def train_and_evaluate(config, workdir, data=None, allow_config_change=False):
    """Runs every stage a config asks for under `workdir` and returns the results dict.

    Stages, each in `workdir/<stage>/` (`stages.plan`): `teacher` (trained, or loaded from
    `config.teacher.checkpoint`), `autoencoder` (the teacher factor,
    docs/method.md#stage-1-teacher-auto-encoder),
    `student` (IE-KD) and, when `config.baseline`, `baseline` (the same student alone, same
    recipe); for method "dml", `mutual`. A finished stage is skipped when its `summary.json`
    exists; an interrupted one resumes from its last whole epoch (BackupAndRestore). Each
    stage keeps `best.keras` and `last.keras` (the bare model: never the teacher inside a
    student checkpoint), `log.csv` and TensorBoard logs under `workdir/tensorboard/<stage>`.
    At the end `results.json` is written and a table printed; with `config.export` the
    student is exported for serving. A key the config leaves out takes base_config()'s value.

    Args:
        config: an `ml_collections.ConfigDict` as in `configs/quickstart.py`.
        workdir: directory of the run (created).
        data: an `ImageData`-like dataset to use instead of `config.data`.
        allow_config_change: resume a workdir recorded with a different config.

    Example:
        >>> from configs import quickstart
        >>> results = train_and_evaluate(quickstart.get_config(), "runs/quickstart")
    """
    config = complete_config(config)
    # MultiWorkerMirroredStrategy must exist before TensorFlow runs any op: create it first.
    strategy = make_strategy(config.distribution)
    validate_config(config)
    # Other workers keep their own backups and bookkeeping; only the chief's files are the
    # run's checkpoints, logs, results and exports.
    chief = multi_worker.is_chief()
    workdir = Path(workdir) if chief else Path(workdir) / "workers" / str(multi_worker.task()[1])
    set_precision(config.precision)
    deterministic, determinism_line = resolve_determinism(config.deterministic, config.jit_compile)
    check_jit_compile(config.jit_compile, strategy, deterministic)
    if chief:
        print(determinism_line)
    data = data if data is not None else load_dataset(config.data)
    # Fail fast: every model of the remaining stages is built and paired before any stage
    # trains or writes (the workdir is only read); it seeds nothing and leaves no names behind.
    check_run(config, data, workdir, strategy.num_replicas_in_sync)
    workdir = prepare_workdir(workdir, config, allow_config_change)
    _seed_everything(config, deterministic)
    started = time.perf_counter()
    plan = stages.plan(config)
    with strategy.scope():
        outputs, records = run_stages(plan, config, workdir, data)
    results = _results(config, data, strategy.num_replicas_in_sync, records, started)
    results["op_determinism"] = deterministic
    if config.export and chief:
        served = next(s.serves(config, outputs[s.name]) for s in plan if s.serves)
        results["export"] = _export(served, workdir, data, config)
    run_records.write_json_atomically(workdir / "results.json", results)
    if chief:
        print(run_records.format_table(results))
    if "export" in results:  # a failed verification is told after the run is recorded
        from iekd_keras.experiment.export_verification import check_rows

        check_rows(results["export"]["verification"])
    return results


def run_stages(plan, config, workdir, data):
    """Runs the stages in order; returns their outputs by stage name and their records."""
    outputs, records = {}, {}
    for stage in plan:
        outputs[stage.name], stage_records = run_stage(stage, config, workdir, data, outputs)
        records.update(stage_records)
    return outputs, records


def run_stage(stage, config, workdir, data, outputs):
    """One stage: skipped when finished (its summary.json exists), else built from the earlier
    stages' `outputs` and fitted (resuming an interrupted fit); then what it gives the later
    stages is loaded, and each of its models recorded with its name and parameter count.

    Returns:
        (its output for the later stages, {results entry: summary}).
    """
    stage_dir = workdir / stage.name
    summary = None
    if stage.build is not None:
        summary = _finished(stage_dir)
        if summary is None:
            summary = _fit(stage, stage.build(config, data, outputs), config, workdir, data)
    output, models = stage.load(config, data, stage_dir, summary)
    records = {
        entry: {**part, "model": name, "trainable_parameters": trainable_parameters(model)}
        for entry, (name, model, part) in models.items()
    }
    if stage.check is not None:
        stage.check(config, data, records)
    return output, records


def trainable_parameters(model):
    """Trainable parameters (Keras's count_params() also counts BatchNorm moving statistics)."""
    return int(sum(np.prod(v.shape) for v in model.trainable_weights))


def _teacher_stage(config, workdir, data):
    """The teacher stage alone: (the teacher the student learns from, its summary)."""
    (stage,) = (stage for stage in stages.plan(config) if stage.name == "teacher")
    teacher, records = run_stage(stage, config, Path(workdir), data, outputs={})
    return teacher, records["teacher"]


def _finished(stage_dir):
    path = stage_dir / stages.SUMMARY
    return json.loads(path.read_text()) if path.exists() else None


# ------------------------------------------------------------------------------------------
# Fitting one stage


def _fit(stage, trainer, config, workdir, data):
    """Compiles and fits one stage's trainer with the standard callbacks; returns its summary
    (also written to the stage's summary.json, which marks it finished)."""
    stage_dir = workdir / stage.name
    stage_dir.mkdir(parents=True, exist_ok=True)
    recipe = stage.recipe(config)
    steps_per_epoch = data.steps_per_epoch(config.batch_size)
    _compile(stage, trainer, config, recipe, steps_per_epoch)
    backup_dir = stage_dir / "backup"
    start_epoch = _backup_epoch(backup_dir)
    tracker = EpochTracker(start_epoch)  # names the epoch if Ctrl-C stops the stage
    callbacks = _callbacks(stage, trainer, config, data, workdir, tracker, steps_per_epoch)
    print(
        f"[{stage.name}] {recipe.epochs} epochs x {steps_per_epoch} steps, global batch "
        f"{config.batch_size}" + (f", resuming at epoch {start_epoch}" if start_epoch else ""),
        flush=True,
    )
    started = time.perf_counter()
    with (
        name_interruption(stage.name, tracker, recipe.epochs, backup_dir),
        multi_worker.reraise_lost_worker(stage.name, backup_dir),
    ):
        trainer.fit(
            _train_dataset(trainer, config, data, recipe.epochs, start_epoch),
            epochs=recipe.epochs,
            steps_per_epoch=steps_per_epoch,
            validation_data=data.test_dataset(config.eval_batch_size),
            callbacks=callbacks,
            shuffle=False,  # the dataset is already shuffled, deterministically per epoch
            verbose=config.verbose,
        )
    summary = _summary(stage, stage_dir, recipe.epochs, steps_per_epoch, started)
    run_records.write_json_atomically(stage_dir / stages.SUMMARY, summary)
    shutil.rmtree(backup_dir, ignore_errors=True)
    return summary


def _callbacks(stage, trainer, config, data, workdir, tracker, steps_per_epoch):
    """The stage's callbacks, in the order they run at each epoch end: the CSV row and the
    checkpoints are written before the backup, so a kill in between makes the resumed run redo
    (and re-log) that epoch."""
    stage_dir = workdir / stage.name
    backup_dir = stage_dir / "backup"
    return [
        tracker,
        NonFiniteLossGuard(stage.name),
        ThroughputLogger(data.num_train_examples),
        *stage.callbacks(config, data, trainer),
        *_checkpoints(stage, stage_dir),
        keras.callbacks.CSVLogger(str(stage_dir / "log.csv"), append=True),
        keras.callbacks.TensorBoard(str(workdir / "tensorboard" / stage.name)),
        InterruptSafeBackupAndRestore(
            str(backup_dir), delete_checkpoint=False, double_checkpoint=True
        ),
        RestoredStateCheck(backup_dir, steps_per_epoch),
    ]


def _compile(stage, trainer, config, recipe, steps_per_epoch):
    """With config.sync_batchnorm every BatchNorm the stage trains works on global-batch
    statistics (frozen teachers run in inference mode, where it changes nothing). Under JAX,
    DataParallel steps already work on global arrays, so BatchNorm statistics are global."""
    if config.sync_batchnorm and keras.backend.backend() != "jax":
        set_synchronized([trainer], True)
    trainer.compile(
        optimizer=_optimizer(config, recipe, steps_per_epoch),
        metrics=["accuracy"] if stage.classifier else None,
        # JAX steps always compile with XLA (un-jitted JAX runs op by op); config.jit_compile
        # is TensorFlow's XLA switch.
        jit_compile=True if keras.backend.backend() == "jax" else config.jit_compile,
    )


def _optimizer(config, recipe, steps_per_epoch):
    optimizer = config.optimizer
    learning_rate = scaled_learning_rate(
        recipe.learning_rate, config.batch_size, optimizer.scale_reference_batch_size
    )
    schedule = epoch_step_decay(learning_rate, recipe.milestones, optimizer.gamma, steps_per_epoch)
    return CoupledWeightDecaySGD(
        learning_rate=schedule,
        momentum=optimizer.momentum,
        nesterov=optimizer.nesterov,
        l2_decay=optimizer.l2_decay if recipe.l2_decay is None else recipe.l2_decay,
    )


def _checkpoints(stage, stage_dir):
    """best and last checkpoints of each model the stage checkpoints; a resumed stage's best
    must beat the best its log already holds."""
    rows = run_records.read_csv_log(stage_dir / "log.csv")
    callbacks = []
    for checkpoint in stage.checkpoints:
        monitor, mode = (
            (f"val_{checkpoint.prefix}accuracy", "max") if stage.classifier else ("val_loss", "min")
        )
        previous = [row[monitor] for row in rows if monitor in row]
        best_so_far = (max(previous) if mode == "max" else min(previous)) if previous else None
        callbacks += [
            StageCheckpoint(
                str(stage_dir / f"best{checkpoint.suffix}.keras"),
                select=checkpoint.select,
                monitor=monitor,
                mode=mode,
                save_best_only=True,
                initial_value_threshold=best_so_far,
            ),
            StageCheckpoint(
                str(stage_dir / f"last{checkpoint.suffix}.keras"), select=checkpoint.select
            ),
        ]
    return callbacks


def _train_dataset(trainer, config, data, epochs, start_epoch):
    augmentation = build_augmentation_layers(config.data.augmentation)
    extra = {"augmentation": augmentation} if augmentation else {}
    if getattr(trainer, "needs_indices", False):
        extra["with_index"] = True  # CRD-like terms need each example's dataset index
    return data.train_dataset(
        config.batch_size, config.seed, epochs, start_epoch=start_epoch, **extra
    )


def _summary(stage, stage_dir, epochs, steps_per_epoch, started):
    rows = run_records.read_csv_log(stage_dir / "log.csv")
    summary = {
        "epochs": epochs,
        "steps_per_epoch": steps_per_epoch,
        "wall_time_s": time.perf_counter() - started,
        "final_logs": rows[-1] if rows else {},
    }
    for prefix in (c.prefix for c in stage.checkpoints if stage.classifier):
        best, last = run_records.best_and_last(rows, f"val_{prefix}accuracy")
        summary[f"{prefix}best_test_accuracy"] = best
        summary[f"{prefix}last_test_accuracy"] = last
    return summary


def _backup_epoch(backup_dir):
    """The epoch BackupAndRestore will resume from (0 without a backup)."""
    metadata = Path(backup_dir) / "training_metadata.json"
    if not metadata.exists():
        return 0
    return int(json.loads(metadata.read_text())["epoch"])


# ------------------------------------------------------------------------------------------
# The run's records


def _seed_everything(config, deterministic):
    """Seeds Python, numpy and the backend; turns on TensorFlow's op determinism if asked."""
    keras.utils.set_random_seed(config.seed)
    if deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def _results(config, data, device_count, records, started):
    return {
        "dataset": data.name,
        "seed": config.seed,
        "global_batch_size": config.batch_size,
        "device_count": device_count,
        "precision": config.precision,
        "versions": _versions(),
        "stages": records,
        "wall_time_s": time.perf_counter() - started,
        "config": config.to_dict(),
    }


def _export(model, workdir, data, config):
    """Exports the served model in config.export_formats, each verified on the test split
    (export/report.json); returns its paths and report rows."""
    from iekd_keras.experiment.export import export_and_verify
    from iekd_keras.experiment.export_verification import format_table

    paths, rows = export_and_verify(
        model,
        workdir / "export",
        data,
        config.export_formats,
        batch_size=config.eval_batch_size,
        check=False,
    )
    print(format_table(rows))
    return {**{key: str(path) for key, path in paths.items()}, "verification": rows}


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
