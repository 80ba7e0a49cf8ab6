"""A/B measurements of library changes, prototyped in bench/ without editing the library.

Each experiment builds the same Keras step twice in ONE process, once as the library builds it
today ("current") and once with the change applied by a bench-side patch, and times them
interleaved (bench/vs_torch.py --patches=... puts them next to PyTorch). Experiments:

  fused_bn   Keras 3's unfused BatchNormalization (moments + batch_normalization: ~10 element-
             wise kernels forward, more backward) vs `bench/fused_batchnorm.py`
             (TensorFlow's FusedBatchNormV3, one oneDNN kernel each way), in the backbones and
             the factor coders.
  pool_shortcut
             the option-A shortcut's `x[:, ::2, ::2]` (StridedSlice + StridedSliceGrad) vs a
             1x1 stride-2 MaxPooling2D, bit-identical (`bench/pool_shortcut.py`).
  fused_bn+pool_shortcut
             both patches together.
  xla        jit_compile=False vs True (XLA on CPU) for the same models (needs
             --no-deterministic: Keras silently drops jit_compile under op determinism).

    .venv/bin/python bench/library_experiments.py --experiment=fused_bn
    .venv/bin/python bench/library_experiments.py --experiment=fused_bn+pool_shortcut
    .venv/bin/python bench/library_experiments.py --experiment=xla --no-deterministic --quick
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import _models  # noqa: E402
import _patches  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--experiment",
        default="fused_bn",
        choices=["fused_bn", "pool_shortcut", "fused_bn+pool_shortcut", "xla"],
    )
    parser.add_argument("--pair", default="cifar")
    parser.add_argument("--batch_size", type=int, default=0)
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--variants", default="student,iekd,eval", help="which steps to time")
    parser.add_argument("--deterministic", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--max_load", type=float, default=1.3)
    parser.add_argument("--max_wait_s", type=float, default=0)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch_size = args.batch_size or 32
        args.repetitions, args.steps, args.warmup = 2, 2, 2
    return args


def keras_variants(tf, pair, teacher, wanted, label, jit_compile, train_batches, eval_batches):
    from iekd_keras.distillers.standalone_trainer import StandaloneTrainer

    variants = {}
    if "student" in wanted:
        trainer = _models.student_trainer(pair, jit_compile)
        variants[f"{label}_student"] = _common.keras_step(
            trainer, _common.cycling_iterator(tf, train_batches)
        )
    if "iekd" in wanted or "eval" in wanted:
        distiller, _ = _models.ie_distiller(pair, teacher, jit_compile=jit_compile)
        if "iekd" in wanted:
            variants[f"{label}_iekd"] = _common.keras_step(
                distiller, _common.cycling_iterator(tf, train_batches)
            )
        if "eval" in wanted:
            evaluator = StandaloneTrainer(distiller.student).compile(
                metrics=["accuracy"], jit_compile=jit_compile
            )
            variants[f"{label}_eval"] = _common.keras_step(
                evaluator, _common.cycling_iterator(tf, eval_batches), "test"
            )
    return variants


def main(argv=None):
    args = parse_args(argv)
    loads, quiet = _common.wait_for_quiet_machine(args.max_load, args.max_wait_s)
    tf = _common.configure_tensorflow()
    if args.deterministic:
        tf.config.experimental.enable_op_determinism()
    import keras

    pair = _models.get_pair(args.pair, args.batch_size)
    wanted = set(args.variants.split(","))
    keras.utils.set_random_seed(0)
    train_batches = _common.random_batches(pair.input_shape, pair.num_classes, pair.batch_size)
    eval_batches = _common.random_batches(
        pair.input_shape, pair.num_classes, pair.eval_batch_size, count=2, seed=1
    )
    variants = {}
    if args.experiment == "xla":
        teacher = _models.build_model(pair.teacher, pair)
        variants.update(
            keras_variants(tf, pair, teacher, wanted, "current", False, train_batches, eval_batches)
        )
        variants.update(
            keras_variants(tf, pair, teacher, wanted, "xla", True, train_batches, eval_batches)
        )
    else:
        teacher = _models.build_model(pair.teacher, pair)
        variants.update(
            keras_variants(tf, pair, teacher, wanted, "current", False, train_batches, eval_batches)
        )
        undo = _patches.apply(args.experiment)
        try:
            patched_teacher = _models.build_model(pair.teacher, pair)
            variants.update(
                keras_variants(
                    tf,
                    pair,
                    patched_teacher,
                    wanted,
                    "patched",
                    False,
                    train_batches,
                    eval_batches,
                )
            )
        finally:
            undo()
    print(f"[bench] {args.experiment}: {pair.teacher} -> {pair.student}, batch {pair.batch_size}")
    times = _common.interleave(variants, args.repetitions, args.steps, args.warmup)
    summary = {}
    for name, t in times.items():
        batch = pair.eval_batch_size if name.endswith("_eval") else pair.batch_size
        summary[name] = _common.summarize(t, batch)
    other = "xla" if args.experiment == "xla" else "patched"
    ratios = {}
    for kind in ("student", "iekd", "eval"):
        a, b = summary.get(f"current_{kind}"), summary.get(f"{other}_{kind}")
        if a and b:
            ratios[f"{other}_speedup_{kind}"] = round(a["median_ms"] / b["median_ms"], 3)
        t = summary.get(f"torch_{kind}")
        for label in ("current", other):
            k = summary.get(f"{label}_{kind}")
            if t and k:
                ratios[f"{label}_{kind}_vs_torch_images_per_s"] = round(
                    k["images_per_s"] / t["images_per_s"], 3
                )
    rows = [
        [n, s["median_ms"], s["q1_ms"], s["q3_ms"], s["images_per_s"]] for n, s in summary.items()
    ]
    _common.print_table(
        f"{args.experiment}: {pair.teacher} -> {pair.student}, batch {pair.batch_size}",
        ["variant", "median ms", "q1 ms", "q3 ms", "images/s"],
        rows,
    )
    for key, value in ratios.items():
        print(f"  {key} = {value}")
    info = _common.machine_info()
    info["quiet_machine"] = quiet
    info["load_average_start"] = loads
    suffix = "_quick" if args.quick else ""
    _common.write_json(
        f"experiment_{args.experiment}_{args.pair}{suffix}",
        {"machine": info, "settings": vars(args), "summary": summary, "ratios": ratios},
    )


if __name__ == "__main__":
    main()
