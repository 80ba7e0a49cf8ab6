"""Images/s on one GPU: our Distiller on Keras-on-JAX vs a PyTorch eager reference, one call.

For a GPU machine that has JAX and PyTorch but no TensorFlow. Nothing here imports TensorFlow:
the Keras side is `iekd_keras` itself (Distiller, StandaloneTrainer, CoupledWeightDecaySGD, the
CIFAR ResNets, built by bench/_models.py as for the CPU benchmarks) trained with `fit` on
in-memory arrays (Keras's own array input pipeline; tf.data needs TensorFlow); the PyTorch side
is bench/torch_reference.py (written after the structure of the released code: eager,
`loss.item()` every step). Pair (`--pair`): by default ResNet-56 -> ResNet-20 on CIFAR shapes,
factor 32, lambda 50/50, Nesterov SGD.

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

Prints one table and writes bench/results/gpu.json (`--output`; gpu_quick.json with --quick).
"""

import os
import platform
import statistics
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import _models  # noqa: E402

FRAMEWORKS = ("keras_jax", "torch")


def parse_args(argv=None):
    parser = _common.argument_parser(
        __doc__, "gpu", batch_size=False, repetitions=3, steps=20, warmup=None, tensorflow=False
    )
    parser.add_argument("--batch_sizes", default="128,512")
    parser.add_argument("--precisions", default="float32,bfloat16")
    parser.add_argument("--variants", default="student,iekd")
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    args = _common.parse_args(parser, argv, batch_sizes="8")
    args.batch_sizes = _common.comma_list(parser, args, "batch_sizes", int)
    args.precisions = _common.comma_list(parser, args, "precisions", ("float32", "bfloat16"))
    args.variants = _common.comma_list(parser, args, "variants", ("student", "iekd"))
    args.frameworks = _common.comma_list(parser, args, "frameworks", FRAMEWORKS)
    if "torch" in args.frameworks:
        _common.require_torch(parser)
    return args


def random_data(pair, batch_size, steps):
    """`steps` batches of random images and labels, as one array each."""
    images, labels = _common.random_batches(pair.input_shape, pair.num_classes, batch_size, steps)
    return images.reshape(-1, *pair.input_shape), labels.reshape(-1)


# ------------------------------------------------------------------------------ Keras on JAX


def keras_images_per_second(pair, variant, precision, batch_size, steps, repetitions):
    import keras

    keras.backend.clear_session()
    keras.config.set_dtype_policy("mixed_bfloat16" if precision == "bfloat16" else "float32")
    keras.utils.set_random_seed(0)
    if variant == "student":
        trainer = _models.student_trainer(pair, jit_compile=True)
    else:
        teacher = _models.build_model(pair.teacher, pair)
        trainer, _ = _models.ie_distiller(pair, teacher, jit_compile=True)
    epoch_times = []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            float(logs["loss"])  # waits for the device
            epoch_times.append(time.perf_counter() - self.started)

    images, labels = random_data(pair, batch_size, steps)
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


def torch_images_per_second(pair, variant, precision, batch_size, steps, repetitions):
    import contextlib

    import torch
    import torch_reference as reference
    from _torch_steps import network

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    student = network(pair, pair.student).to(device)
    if variant == "student":
        step = reference.StudentStep(student)
    else:
        teacher = network(pair, pair.teacher).to(device)
        step = reference.IEKDStep(teacher, student)
        for module in (step.teacher_embed, step.embed_inh, step.embed_exp):
            module.to(device)
        # The optimizer was made before the coders moved: rebuild it on the moved parameters.
        step.optimizer = reference.sgd(
            [*student.parameters(), *step.embed_inh.parameters(), *step.embed_exp.parameters()]
        )
    images, labels = random_data(pair, batch_size, steps)
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
    info = _common.wait_then_describe(args, ["jax", "torch"])
    pair = _models.get_pair(args.pair)
    measure = {"keras_jax": keras_images_per_second, "torch": torch_images_per_second}
    rows = []
    for precision in args.precisions:
        for batch_size in args.batch_sizes:
            for variant in args.variants:
                row = {"precision": precision, "batch_size": batch_size, "variant": variant}
                for framework in args.frameworks:
                    started = time.perf_counter()
                    row[framework] = measure[framework](
                        pair, variant, precision, batch_size, args.steps, args.repetitions
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
    payload = {"machine": info, "device": device_description(), "versions": versions()}
    payload.update(settings=vars(args), pair=vars(pair), rows=rows)
    _common.write_json(args.output, payload)
    print(f"TensorFlow imported: {payload['device']['tensorflow_imported']}")


if __name__ == "__main__":
    main()
