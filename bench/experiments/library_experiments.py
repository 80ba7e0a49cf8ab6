"""A/B measurements of library changes, in one process, interleaved.

Each experiment builds the same Keras step twice in ONE process, once as the library builds it
now ("current") and once otherwise, and times them interleaved (bench/vs_torch.py --patches=...
puts them next to PyTorch, but needs PyTorch). Experiments:

  keras_bn   the library's BatchNormalization (TensorFlow's FusedBatchNormV3, one oneDNN kernel
             each way) vs Keras 3's, which the library built before (moments +
             batch_normalization: ~10 element-wise kernels forward, more backward), in the
             backbones and the factor coders ("previous", `previous_layers.py`).
  sliced_shortcut
             the option-A shortcut's 1x1 stride-2 max pooling vs the strided slice
             `x[:, ::2, ::2]` (StridedSlice + StridedSliceGrad) it replaced, bit-identical.
  keras_bn+sliced_shortcut
             both previous layers together: the speed-up of the two changes.
  xla        jit_compile=False vs True (XLA on CPU) for the same models (needs
             --no-deterministic: Keras silently drops jit_compile under op determinism).

`previous_speedup_<step>` is previous time / current time (above 1: the change made it faster);
`xla_speedup_<step>` is current time / XLA time.

    .venv/bin/python bench/experiments/library_experiments.py --experiment=keras_bn
    .venv/bin/python bench/experiments/library_experiments.py --experiment=keras_bn+sliced_shortcut
    .venv/bin/python bench/experiments/library_experiments.py --experiment=xla --no-deterministic
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import _common  # noqa: E402
import _models  # noqa: E402

from experiments import patches  # noqa: E402

EXPERIMENTS = ("keras_bn", "sliced_shortcut", "keras_bn+sliced_shortcut", "xla")


def parse_args(argv=None):
    parser = _common.argument_parser(__doc__, "experiment_{experiment}_{pair}")
    parser.add_argument("--experiment", default="keras_bn", choices=EXPERIMENTS)
    parser.add_argument("--variants", default="student,iekd,eval", help="which steps to time")
    args = _common.parse_args(parser, argv)
    args.variants = _common.comma_list(parser, args, "variants", ("student", "iekd", "eval"))
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
    tf, info = _common.start_tensorflow(args)
    import keras

    pair = _models.get_pair(args.pair, _common.batch_size(args, args.pair))
    wanted = set(args.variants)
    keras.utils.set_random_seed(0)
    train_batches = _common.random_batches(pair.input_shape, pair.num_classes, pair.batch_size)
    eval_batches = _common.random_batches(
        pair.input_shape, pair.num_classes, pair.eval_batch_size, count=2, seed=1
    )
    batches = (train_batches, eval_batches)
    teacher = _models.build_model(pair.teacher, pair)
    variants = keras_variants(tf, pair, teacher, wanted, "current", False, *batches)
    other = "xla" if args.experiment == "xla" else "previous"
    if args.experiment == "xla":
        variants.update(keras_variants(tf, pair, teacher, wanted, "xla", True, *batches))
    else:
        undo = patches.apply(args.experiment)
        try:
            patched_teacher = _models.build_model(pair.teacher, pair)
            variants.update(
                keras_variants(tf, pair, patched_teacher, wanted, "previous", False, *batches)
            )
        finally:
            undo()
    print(f"[bench] {args.experiment}: {pair.teacher} -> {pair.student}, batch {pair.batch_size}")
    times = _common.interleave(variants, args.repetitions, args.steps, args.warmup)
    summary = _common.summarize_pair(times, pair)
    ratios = {}
    for kind in ("student", "iekd", "eval"):
        a, b = summary.get(f"current_{kind}"), summary.get(f"{other}_{kind}")
        if a and b:
            slow, fast = (a, b) if other == "xla" else (b, a)
            ratios[f"{other}_speedup_{kind}"] = round(slow["median_ms"] / fast["median_ms"], 3)
    _common.print_summary(
        f"{args.experiment}: {pair.teacher} -> {pair.student}, batch {pair.batch_size}", summary
    )
    for key, value in ratios.items():
        print(f"  {key} = {value}")
    _common.write_json(
        args.output.format(experiment=args.experiment, pair=args.pair),
        {"machine": info, "settings": vars(args), "summary": summary, "ratios": ratios},
    )


if __name__ == "__main__":
    main()
