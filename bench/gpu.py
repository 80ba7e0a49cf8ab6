"""Images/s on one GPU: our Distiller on Keras-on-JAX vs a PyTorch eager reference, one call.

For a GPU machine that has JAX and PyTorch but no TensorFlow. Nothing here imports TensorFlow:
the Keras side is `iekd_keras` itself (Distiller, StandaloneTrainer, CoupledWeightDecaySGD, the
CIFAR ResNets) trained with `fit` on in-memory arrays (Keras's own array input pipeline; tf.data
needs TensorFlow); the PyTorch side is bench/torch_reference.py (written after the structure
of the released code: eager, `loss.item()` every step). Pair: ResNet-56 -> ResNet-20 on CIFAR
shapes, factor 32, lambda 50/50, Nesterov SGD.

Measured, for each precision (float32; bfloat16 = Keras "mixed_bfloat16" / torch.autocast
bfloat16) and batch size (128, 512): the student alone and the IE-KD step, in images/s.
Keras steps are jitted (XLA); each timed epoch ends on a host read of the loss, so device work
is included. Each framework's variants are timed after a warm-up epoch that absorbs
compilation; the reported value is the median over `--repetitions` epochs.

    # Beforehand, where pip works: the wheels an image with JAX but no Keras lacks.
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
        --platform manylinux2014_x86_64 -d .whl keras==3.15.1 namex optree
    # On the GPU machine, from the repository root:
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
    PYTHONPATH=/tmp/site KERAS_BACKEND=jax python3 bench/gpu.py
    # A dry run on any machine (tiny batches, CPU when no GPU):
    KERAS_BACKEND=jax python bench/gpu.py --quick

Prints one table and writes bench/results/gpu.json (or `--output`).
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(BENCH_DIR))
sys.path.insert(0, BENCH_DIR)

TEACHER, STUDENT = 56, 20
INPUT_SHAPE = (32, 32, 3)
NUM_CLASSES = 10
FACTOR_CHANNELS = 32


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch_sizes", default="128,512")
    parser.add_argument("--precisions", default="float32,bfloat16")
    parser.add_argument("--variants", default="student,iekd")
    parser.add_argument("--frameworks", default="keras_jax,torch")
    parser.add_argument("--steps", type=int, default=20, help="steps per timed epoch")
    parser.add_argument("--repetitions", type=int, default=3, help="timed epochs")
    parser.add_argument("--output", default=os.path.join(BENCH_DIR, "results", "gpu.json"))
    parser.add_argument("--quick", action="store_true", help="tiny dry run (any device)")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch_sizes, args.steps, args.repetitions = "8", 2, 2
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    for name in ("precisions", "variants", "frameworks"):
        setattr(args, name, getattr(args, name).split(","))
    return args


def random_data(batch_size, steps, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    images = rng.normal(size=(batch_size * steps, *INPUT_SHAPE)).astype("float32")
    labels = rng.integers(0, NUM_CLASSES, size=(batch_size * steps,)).astype("int32")
    return images, labels


# ------------------------------------------------------------------------------ Keras on JAX


def keras_images_per_second(variant, precision, batch_size, steps, repetitions):
    import keras

    from iekd_keras.distillers import Distiller, StandaloneTrainer
    from iekd_keras.layers import FactorAutoencoder
    from iekd_keras.models import get_model
    from iekd_keras.optimizers import CoupledWeightDecaySGD

    keras.backend.clear_session()
    keras.config.set_dtype_policy("mixed_bfloat16" if precision == "bfloat16" else "float32")
    keras.utils.set_random_seed(0)

    def model(depth):
        return get_model(f"resnet{depth}", num_classes=NUM_CLASSES, input_shape=INPUT_SHAPE)

    if variant == "student":
        trainer = StandaloneTrainer(model(STUDENT))
    else:
        encoder = FactorAutoencoder(FACTOR_CHANNELS).encoder
        trainer = Distiller(model(TEACHER), model(STUDENT), encoder)
    optimizer = CoupledWeightDecaySGD(0.1, momentum=0.9, nesterov=True, l2_decay=5e-4)
    trainer.compile(optimizer=optimizer, jit_compile=True)
    epoch_times = []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            float(logs["loss"])  # waits for the device
            epoch_times.append(time.perf_counter() - self.started)

    images, labels = random_data(batch_size, steps)
    trainer.fit(
        images,
        labels,
        batch_size=batch_size,
        epochs=1 + repetitions,
        shuffle=False,
        verbose=0,
        callbacks=[EpochTimer()],
    )
    keras.config.set_dtype_policy("float32")
    return batch_size * steps / statistics.median(epoch_times[1:])


# ------------------------------------------------------------------------------ PyTorch eager


def torch_images_per_second(variant, precision, batch_size, steps, repetitions):
    import contextlib

    import torch
    import torch_reference as reference

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    student = reference.resnet(STUDENT, NUM_CLASSES).to(device)
    if variant == "student":
        step = reference.StudentStep(student)
    else:
        teacher = reference.resnet(TEACHER, NUM_CLASSES).to(device)
        step = reference.IEKDStep(teacher, student, factor_channels=FACTOR_CHANNELS)
        for module in (step.teacher_embed, step.embed_inh, step.embed_exp):
            module.to(device)
        # The optimizer was made before the coders moved: rebuild it on the moved parameters.
        step.optimizer = reference.sgd(
            [*student.parameters(), *step.embed_inh.parameters(), *step.embed_exp.parameters()]
        )
    images, labels = random_data(batch_size, steps)
    images = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().to(device)
    labels = torch.from_numpy(labels).long().to(device)
    batches = [
        (images[start : start + batch_size], labels[start : start + batch_size])
        for start in range(0, steps * batch_size, batch_size)
    ]

    def autocast():
        if precision != "bfloat16":
            return contextlib.nullcontext()
        return torch.autocast(device_type=device, dtype=torch.bfloat16)

    epoch_times = []
    for _ in range(1 + repetitions):
        started = time.perf_counter()
        for batch_images, batch_labels in batches:
            with autocast():
                step(batch_images, batch_labels)  # ends with loss.item(): a device sync
        epoch_times.append(time.perf_counter() - started)
    return batch_size * steps / statistics.median(epoch_times[1:])


# ------------------------------------------------------------------------------ report


def device_description():
    import jax

    return {
        "jax_devices": [str(device) for device in jax.devices()],
        "python": platform.python_version(),
        "tensorflow_imported": "tensorflow" in sys.modules,
    }


def versions():
    found = {}
    for name in ("keras", "jax", "torch", "numpy"):
        try:
            found[name] = __import__(name).__version__
        except ImportError:
            found[name] = None
    return found


def main(argv=None):
    args = parse_args(argv)
    measure = {"keras_jax": keras_images_per_second, "torch": torch_images_per_second}
    unknown = set(args.frameworks) - set(measure)
    if unknown:
        raise SystemExit(f"--frameworks: unknown {sorted(unknown)}; expected {sorted(measure)}")
    rows = []
    for precision in args.precisions:
        for batch_size in args.batch_sizes:
            for variant in args.variants:
                row = {"precision": precision, "batch_size": batch_size, "variant": variant}
                for framework in args.frameworks:
                    started = time.perf_counter()
                    row[framework] = measure[framework](
                        variant, precision, batch_size, args.steps, args.repetitions
                    )
                    print(
                        f"{precision:>8} batch {batch_size:>4} {variant:>7} {framework:>9}: "
                        f"{row[framework]:10.1f} images/s ({time.perf_counter() - started:.0f} s)",
                        flush=True,
                    )
                if "keras_jax" in row and "torch" in row:
                    row["keras_jax_over_torch"] = row["keras_jax"] / row["torch"]
                rows.append(row)
    print("\n| precision | batch | step | Keras+JAX images/s | PyTorch images/s | ratio |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        keras_value, torch_value = row.get("keras_jax"), row.get("torch")
        ratio = row.get("keras_jax_over_torch")
        print(
            f"| {row['precision']} | {row['batch_size']} | {row['variant']} | "
            + " | ".join(
                "-" if value is None else f"{value:,.0f}" for value in (keras_value, torch_value)
            )
            + f" | {'-' if ratio is None else f'{ratio:.2f}'} |"
        )
    payload = {"device": device_description(), "versions": versions(), "rows": rows}
    payload["settings"] = {"steps": args.steps, "repetitions": args.repetitions}
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as handle:
        json.dump(payload, handle, indent=2)
    print(f"\nwrote {args.output}; TensorFlow imported: {payload['device']['tensorflow_imported']}")


if __name__ == "__main__":
    main()
