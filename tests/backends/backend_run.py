"""Trains a tiny stage for a few steps on one backend and saves its loss terms and weights.

Run in a fresh process by `test_backend_equivalence.py` (through `tests/subprocess_checks.py`;
the backend, and JAX's host device count, are fixed when Keras and JAX are imported):

    KERAS_BACKEND=jax python -m tests.backends.backend_run --trainers=distiller,mutual \
        --directory=/tmp/runs --name=jax [--data_parallel]

For each trainer, the initial weights are read from `<directory>/<trainer>.weights.h5` when it
exists, else written there, so that two backends (whose initialisers differ) start from the
same weights; the results go to `<directory>/<trainer>_<name>.npz`, and the stage's checkpoint
model (what train_and_evaluate saves) to `<directory>/<trainer>_<name>.keras`. With
`--data_parallel` the runs use `keras.distribution.DataParallel` over every JAX device.
"""

import argparse
import os
from pathlib import Path

TRAINERS = ("distiller", "autoencoder", "mutual")
STEPS = 5
BATCH = 8


def build(trainer):
    import keras

    from iekd_keras.distillers import Distiller, FactorAutoencoderTrainer, MutualDistiller
    from iekd_keras.layers import FactorAutoencoder
    from iekd_keras.optimizers import CoupledWeightDecaySGD
    from tests.distillers.tiny_models import tiny_backbone

    keras.utils.set_random_seed(0)
    optimizer = CoupledWeightDecaySGD(0.05, momentum=0.9, nesterov=True, l2_decay=5e-4)
    if trainer == "mutual":
        model = MutualDistiller(
            tiny_backbone(channels=6, name="peer_a"),
            tiny_backbone(channels=6, name="peer_b"),
            lambda_inh=5.0,
            lambda_exp=5.0,
            # L1's gradient is a sign: an element whose error is within rounding of 0 flips
            # it, turning float-ordering noise into 1e-4 differences within 5 steps. With four
            # coders trained on moving peer features the mutual stage meets such elements
            # (measured: 8.6e-5 between two TensorFlow runs); squared errors keep the
            # comparison tight. The Distiller and auto-encoder runs keep the L1 defaults.
            reconstruction="mse",
            p=2.0,
        )
        return model.compile(optimizer=optimizer, metrics=["accuracy"])
    teacher = tiny_backbone(channels=8, name="teacher")
    autoencoder = FactorAutoencoder(4, name="teacher_autoencoder")
    if trainer == "autoencoder":
        return FactorAutoencoderTrainer(teacher, autoencoder).compile(optimizer=optimizer)
    autoencoder.build(teacher.outputs[1].shape)
    student = tiny_backbone(channels=6, name="student")
    model = Distiller(teacher, student, autoencoder.encoder, lambda_inh=5.0, lambda_exp=5.0)
    return model.compile(optimizer=optimizer, metrics=["accuracy"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trainers", default=",".join(TRAINERS))
    parser.add_argument("--directory", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--data_parallel", action="store_true")
    args = parser.parse_args(argv)

    import keras

    if args.data_parallel:
        keras.distribution.set_distribution(keras.distribution.DataParallel())
    for trainer in args.trainers.split(","):
        if trainer not in TRAINERS:
            parser.error(f"--trainers: {trainer!r} is not one of {TRAINERS}")
        directory = Path(args.directory)
        run(trainer, directory / f"{trainer}.weights.h5", directory / f"{trainer}_{args.name}.npz")
        keras.backend.clear_session()


def run(trainer, init, out):
    """Trains `trainer` from the weights in `init` (written first if missing); saves to `out`."""
    import keras
    import numpy as np

    from tests.distillers.tiny_models import tiny_batches

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        # Without it two TensorFlow runs of the mutual stage differed by 1.4e-4 within 5
        # steps; with it they repeat exactly, as JAX on the CPU does.
        tf.config.experimental.enable_op_determinism()
    model = build(trainer)
    if os.path.exists(init):
        model.load_weights(init)
    else:
        model.save_weights(init)
    images, labels = tiny_batches(STEPS * BATCH)
    history = {}
    for step in range(STEPS):
        model.reset_metrics()
        batch = slice(step * BATCH, (step + 1) * BATCH)
        logs = model.train_on_batch(images[batch], labels[batch], return_dict=True)
        for name, value in logs.items():
            history.setdefault(name, []).append(float(value))
    evaluation = model.evaluate(images, labels, batch_size=BATCH, verbose=0, return_dict=True)
    arrays = {f"history/{name}": np.asarray(values) for name, values in history.items()}
    arrays.update({f"evaluate/{name}": np.asarray(value) for name, value in evaluation.items()})
    for index, variable in enumerate(model.weights):
        arrays[f"weight/{index:03d}/{variable.path}"] = keras.ops.convert_to_numpy(variable)
    arrays["iterations"] = np.asarray(int(keras.ops.convert_to_numpy(model.optimizer.iterations)))
    arrays["backend"] = np.asarray(keras.backend.backend())
    np.savez(out, **arrays)
    model.checkpoint_model.save(str(out).replace(".npz", ".keras"))


if __name__ == "__main__":
    main()
