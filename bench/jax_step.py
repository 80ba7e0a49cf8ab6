"""Keras 3 on the JAX backend: a minimal IE-KD step and the student alone, jitted (XLA), on CPU.

The library's train_step is TensorFlow-only today, so this is a MINIMAL EQUIVALENT step written
here with keras.ops and Keras's stateless API, on the library's own models and layers:
student (+ its two FactorEncoders, behind a FeatureSplit) in training mode, the frozen teacher
and teacher FactorEncoder in inference mode, loss = CE + 50 D_1(F_inh, F_T) - 50 D_1(F_exp, F_T),
gradients by jax.value_and_grad, one CoupledWeightDecaySGD step (Nesterov, momentum 0.9, L2 5e-4)
by `optimizer.stateless_apply`, the whole step under one `jax.jit` with donated state (no
retracing: shapes are fixed). It reports no metrics beyond the loss.

Runs in a Python environment with keras and jax (TensorFlow is not needed), e.g.

    python3 -m venv /tmp/jaxvenv && /tmp/jaxvenv/bin/pip install "keras==3.15.1" jax jaxlib
    /tmp/jaxvenv/bin/python bench/jax_step.py            # interleaved, writes results/jax_step.json
    /tmp/jaxvenv/bin/python bench/jax_step.py --quick

`--worker` serves timed steps over stdin/stdout so that bench/vs_torch.py can interleave the JAX
steps with the TensorFlow and PyTorch ones (`--jax_python=/tmp/jaxvenv/bin/python`).
"""

import argparse
import os
import sys

os.environ["KERAS_BACKEND"] = "jax"
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import _models  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pair", default="cifar")
    parser.add_argument("--batch_size", type=int, default=0)
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--worker", action="store_true", help="serve steps over stdin/stdout")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch_size = args.batch_size or 32
        args.repetitions, args.steps, args.warmup = 2, 2, 2
    return args


def build_steps(pair):
    """dict name -> one-step callable that blocks until the step's loss is on the host."""
    import jax
    import keras
    import numpy as np
    from keras import ops

    from iekd_keras.layers import FactorEncoder, FeatureSplit, normalize_per_sample
    from iekd_keras.optimizers.coupled_weight_decay_sgd import CoupledWeightDecaySGD

    keras.utils.set_random_seed(0)
    images = keras.Input(pair.input_shape, name="images")

    teacher = _models.build_model(pair.teacher, pair)
    teacher_features = teacher(images)[1]
    teacher_factor = FactorEncoder(32, name="teacher_encoder")(teacher_features)
    teacher_side = keras.Model(images, teacher_factor)

    student = _models.build_model(pair.student, pair)
    logits, features = student(images)
    inheritance, exploration = FeatureSplit(name="feature_split")(features)
    inheritance_factor = FactorEncoder(32, name="inheritance_encoder")(inheritance)
    exploration_factor = FactorEncoder(32, name="exploration_encoder")(exploration)
    student_side = keras.Model(images, [logits, inheritance_factor, exploration_factor])

    alone = _models.build_model(pair.student, pair)

    def cross_entropy(labels, logits):
        return ops.mean(
            keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        )

    def d1(student_factor, teacher_factor):
        return ops.mean(
            ops.abs(normalize_per_sample(student_factor) - normalize_per_sample(teacher_factor))
        )

    def make_train_step(model, loss_fn):
        optimizer = CoupledWeightDecaySGD(0.1)
        optimizer.build(model.trainable_variables)

        def compute(trainable, non_trainable, extra, x, y):
            outputs, non_trainable = model.stateless_call(
                trainable, non_trainable, x, training=True
            )
            return loss_fn(outputs, extra, x, y), non_trainable

        grad_fn = jax.value_and_grad(compute, has_aux=True)

        @jax.jit
        def step(state, extra, x, y):
            trainable, non_trainable, optimizer_vars = state
            (loss, non_trainable), grads = grad_fn(trainable, non_trainable, extra, x, y)
            trainable, optimizer_vars = optimizer.stateless_apply(optimizer_vars, grads, trainable)
            return loss, (trainable, non_trainable, optimizer_vars)

        step_donating = jax.jit(step, donate_argnums=(0,))
        state = [
            (
                [v.value for v in model.trainable_variables],
                [v.value for v in model.non_trainable_variables],
                [v.value for v in optimizer.variables],
            )
        ]
        return step_donating, state

    teacher_state = (
        [v.value for v in teacher_side.trainable_variables],
        [v.value for v in teacher_side.non_trainable_variables],
    )

    @jax.jit
    def teacher_factor_fn(teacher_vars, x):
        factor, _ = teacher_side.stateless_call(*teacher_vars, x, training=False)
        return jax.lax.stop_gradient(factor)

    def ie_loss(outputs, teacher_vars, x, y):
        logits, inheritance_factor, exploration_factor = outputs
        factor = teacher_factor_fn(teacher_vars, x)
        return (
            cross_entropy(y, logits)
            + 50.0 * d1(inheritance_factor, factor)
            - 50.0 * d1(exploration_factor, factor)
        )

    def ce_loss(outputs, _, x, y):
        return cross_entropy(y, outputs[0])

    ie_step, ie_state = make_train_step(student_side, ie_loss)
    student_step, student_state = make_train_step(alone, ce_loss)

    teacher_only_vars = (
        [v.value for v in teacher.trainable_variables],
        [v.value for v in teacher.non_trainable_variables],
    )

    @jax.jit
    def teacher_infer(variables, x):
        (logits, _), _ = teacher.stateless_call(*variables, x, training=False)
        return ops.sum(logits)

    images_np, labels_np = _common.random_batches(
        pair.input_shape, pair.num_classes, pair.batch_size
    )
    batches = [(jax.device_put(images_np[i]), jax.device_put(labels_np[i])) for i in range(4)]
    counters = {"i": 0}

    def next_batch():
        counters["i"] = (counters["i"] + 1) % len(batches)
        return batches[counters["i"]]

    def run_ie():
        x, y = next_batch()
        loss, ie_state[0] = ie_step(ie_state[0], teacher_state, x, y)
        return float(np.asarray(loss))

    def run_student():
        x, y = next_batch()
        loss, student_state[0] = student_step(student_state[0], None, x, y)
        return float(np.asarray(loss))

    def run_teacher():
        x, _ = next_batch()
        return float(np.asarray(teacher_infer(teacher_only_vars, x)))

    return {"student": run_student, "teacher": run_teacher, "iekd": run_ie}


def main(argv=None):
    args = parse_args(argv)
    pair = _models.get_pair(args.pair, args.batch_size)
    steps = build_steps(pair)
    if args.worker:
        _common.serve_steps(steps, args.warmup)
        return
    import jax

    times = _common.interleave(steps, args.repetitions, args.steps, args.warmup)
    summary = {name: _common.summarize(t, pair.batch_size) for name, t in times.items()}
    med = {name: s["median_ms"] for name, s in summary.items()}
    ratios = {
        "iekd_over_student_plus_teacher": round(med["iekd"] / (med["student"] + med["teacher"]), 3)
    }
    rows = [
        [n, s["median_ms"], s["q1_ms"], s["q3_ms"], s["images_per_s"]] for n, s in summary.items()
    ]
    _common.print_table(
        f"Keras {__import__('keras').__version__} on JAX {jax.__version__} (jit, CPU): "
        f"{pair.teacher} -> {pair.student}, batch {pair.batch_size}",
        ["variant", "median ms", "q1 ms", "q3 ms", "images/s"],
        rows,
    )
    print(f"  iekd / (student + teacher) = {ratios['iekd_over_student_plus_teacher']}")
    info = _common.machine_info(["jax", "jaxlib"])
    _common.write_json(
        "jax_step" + ("_quick" if args.quick else ""),
        {"machine": info, "settings": vars(args), "summary": summary, "ratios": ratios},
    )


if __name__ == "__main__":
    main()
