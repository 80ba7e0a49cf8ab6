"""The library's own training steps on Keras 3's JAX backend (jitted by XLA), interleaved, CPU.

The same variants as bench/step_cost.py's (a), (b) and (c), built by the same bench/_models.py
and compiled with `jit_compile=True`: the student alone (`StandaloneTrainer`), the teacher's
forward pass in inference mode, and the IE-KD `Distiller` step (TermModel's stateless JAX step:
`jax.value_and_grad`, `optimizer.stateless_apply`). One step is one `train_on_batch` (or
`predict_on_batch`) call on fixed in-memory batches, which returns once its outputs are on the
host; TensorFlow is not needed. Reported: per-step medians and c / (a + b).

    .venv/bin/python bench/jax_step.py               # writes bench/results/jax_step.json
    .venv/bin/python bench/jax_step.py --quick

`--worker` serves timed steps over stdin/stdout so that bench/vs_torch.py can interleave the JAX
steps with the TensorFlow and PyTorch ones (`--jax_python=.venv/bin/python`).
"""

import itertools
import os
import sys

os.environ["KERAS_BACKEND"] = "jax"
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import _models  # noqa: E402


def parse_args(argv=None):
    parser = _common.argument_parser(__doc__, "jax_step", steps=4, tensorflow=False)
    parser.add_argument("--worker", action="store_true", help="serve steps over stdin/stdout")
    return _common.parse_args(parser, argv)


def build_steps(pair):
    """dict name -> one-step callable that returns once the step's outputs are on the host."""
    import keras

    keras.utils.set_random_seed(0)
    teacher = _models.build_model(pair.teacher, pair)
    student = _models.student_trainer(pair, jit_compile=True)
    distiller, _ = _models.ie_distiller(pair, teacher, jit_compile=True)
    images, labels = _common.random_batches(pair.input_shape, pair.num_classes, pair.batch_size)
    order = itertools.cycle(range(len(images)))

    def on_batches(run):
        def step():
            index = next(order)
            return run(images[index], labels[index])

        return step

    return {
        "student": on_batches(student.train_on_batch),
        "teacher": on_batches(lambda x, _: teacher.predict_on_batch(x)),
        "iekd": on_batches(distiller.train_on_batch),
    }


def main(argv=None):
    args = parse_args(argv)
    pair = _models.get_pair(args.pair, _common.batch_size(args, args.pair))
    if args.worker:
        _common.serve_steps(build_steps(pair), args.warmup)
        return
    info = _common.wait_then_describe(args, ["jax", "jaxlib"])
    import jax
    import keras

    steps = build_steps(pair)
    times = _common.interleave(steps, args.repetitions, args.steps, args.warmup)
    summary = {name: _common.summarize(t, pair.batch_size) for name, t in times.items()}
    med = {name: s["median_ms"] for name, s in summary.items()}
    ratios = {
        "iekd_over_student_plus_teacher": round(med["iekd"] / (med["student"] + med["teacher"]), 3)
    }
    _common.print_summary(
        f"Keras {keras.__version__} on JAX {jax.__version__} (jit, {jax.default_backend()}): "
        f"{pair.teacher} -> {pair.student}, batch {pair.batch_size}",
        summary,
    )
    print(f"  iekd / (student + teacher) = {ratios['iekd_over_student_plus_teacher']}")
    _common.write_json(
        args.output,
        {"machine": info, "settings": vars(args), "summary": summary, "ratios": ratios},
    )


if __name__ == "__main__":
    main()
