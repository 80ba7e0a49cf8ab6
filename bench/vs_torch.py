"""The IE-KD training step: iekd_keras (TensorFlow) vs a PyTorch eager reference, same CPU, one run.

The PyTorch side is bench/torch_reference.py, written for this benchmark after the structure of
the released IE-KD code (teacher + encoder under no_grad, student forward, 50/50 channel split,
two factor coders, CE + 50 D_1 - 50 D_1, zero_grad / backward / Nesterov SGD step, loss.item()).
Each framework runs in its own process (PyTorch and, optionally, Keras-on-JAX as workers that
idle between requests) and the steps are interleaved: TF, torch, [jax], TF, torch, ... on the
same random batches (CIFAR shapes by default). Reported: images/s and the ratio
iekd_keras / PyTorch (target >= 1.0), for the IE-KD step and, for context, the student alone.

    .venv/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu  # bench extra
    .venv/bin/python bench/vs_torch.py
    .venv/bin/python bench/vs_torch.py --patches=keras_bn+sliced_shortcut \
        --jax_python=.venv/bin/python
    .venv/bin/python bench/vs_torch.py --quick

`--patches` adds the Keras steps with the patches of bench/experiments/ (keras_bn,
sliced_shortcut: the library's previous layers, previous_layers.py) as "keras_patched", `--xla`
the Keras steps with jit_compile=True, `--jax_python` the library's own steps on Keras-on-JAX
(bench/jax_step.py, run by that interpreter; the project's venv has JAX), `--run_decoders`
makes PyTorch also run the unused decoders as the released code does (default: the same work
as iekd_keras).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import _models  # noqa: E402


def parse_args(argv=None):
    parser = _common.argument_parser(__doc__, "vs_torch", patches=True)
    parser.add_argument("--variants", default="student,iekd", help="some of student, iekd")
    parser.add_argument("--xla", action="store_true")
    parser.add_argument("--jax_python", default="", help="python of a venv with keras + jax")
    parser.add_argument("--run_decoders", action="store_true")
    parser.add_argument("--torch_threads", type=int, default=0)
    args = _common.parse_args(parser, argv)
    args.variants = _common.comma_list(parser, args, "variants", ("student", "iekd"))
    _common.require_torch(parser)
    return args


def keras_steps(tf, pair, teacher, wanted, label, batches, jit_compile=False):
    steps = {}
    if "student" in wanted:
        steps[f"{label}_student"] = _common.keras_step(
            _models.student_trainer(pair, jit_compile), _common.cycling_iterator(tf, batches)
        )
    if "iekd" in wanted:
        distiller, _ = _models.ie_distiller(pair, teacher, jit_compile=jit_compile)
        steps[f"{label}_iekd"] = _common.keras_step(
            distiller, _common.cycling_iterator(tf, batches)
        )
    return steps


def main(argv=None):
    args = parse_args(argv)
    tf, info = _common.start_tensorflow(args, extra_packages=["torch"])
    wanted = args.variants
    pair = _models.get_pair(args.pair, _common.batch_size(args, args.pair))
    here = os.path.dirname(os.path.abspath(__file__))
    common_flags = [f"--pair={args.pair}", f"--batch_size={pair.batch_size}"]
    workers = {}
    workers["torch"] = _common.RemoteSteps(
        [
            sys.executable,
            os.path.join(here, "_torch_steps.py"),
            *common_flags,
            f"--variants={','.join(wanted)}",
            f"--threads={args.torch_threads}",
            f"--warmup={args.warmup}",
            *(["--run_decoders"] if args.run_decoders else []),
        ]
    )
    if args.jax_python:
        env = dict(os.environ, KERAS_BACKEND="jax")
        workers["jax"] = _common.RemoteSteps(
            [
                args.jax_python,
                os.path.join(here, "jax_step.py"),
                "--worker",
                *common_flags,
                f"--warmup={args.warmup}",
            ],
            env=env,
        )

    try:
        import keras

        keras.utils.set_random_seed(0)
        batches = _common.random_batches(pair.input_shape, pair.num_classes, pair.batch_size)
        teacher = _models.build_model(pair.teacher, pair)
        variants = keras_steps(tf, pair, teacher, wanted, "keras", batches)
        if args.xla:
            variants.update(keras_steps(tf, pair, teacher, wanted, "keras_xla", batches, True))
        if args.patches:
            from experiments import patches

            undo = patches.apply(args.patches)
            try:
                patched_teacher = _models.build_model(pair.teacher, pair)
                variants.update(
                    keras_steps(tf, pair, patched_teacher, wanted, "keras_patched", batches)
                )
            finally:
                undo()
        for framework, worker in workers.items():
            for name in worker.names:
                if name in wanted:
                    variants[f"{framework}_{name}"] = worker.step(name)

        print(f"[bench] {pair.teacher} -> {pair.student}, batch {pair.batch_size}")
        times = _common.interleave(variants, args.repetitions, args.steps, args.warmup)
    finally:
        for worker in workers.values():
            worker.close()

    summary = {name: _common.summarize(t, pair.batch_size) for name, t in times.items()}
    ratios = {}
    for kind in wanted:
        torch_result = summary.get(f"torch_{kind}")
        for name, s in summary.items():
            if name.endswith(f"_{kind}") and not name.startswith("torch") and torch_result:
                label = name.removesuffix(f"_{kind}")
                ratios[f"{label}_over_torch_{kind}"] = round(
                    s["images_per_s"] / torch_result["images_per_s"], 3
                )
    _common.print_summary(
        f"{pair.teacher} -> {pair.student}, batch {pair.batch_size}, one step "
        f"(PyTorch decoders run: {args.run_decoders})",
        summary,
    )
    for key, value in ratios.items():
        target = "  (target >= 1.0)" if key == "keras_over_torch_iekd" else ""
        print(f"  {key} = {value}{target}")
    if args.jax_python:
        info["jax_python"] = args.jax_python
    _common.write_json(
        args.output, {"machine": info, "settings": vars(args), "summary": summary, "ratios": ratios}
    )


if __name__ == "__main__":
    main()
