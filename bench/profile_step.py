"""Where the time of a training step goes: TensorFlow profiler traces, aggregated by op type.

Profiles a few steps of each variant of bench/step_cost.py (student alone, teacher inference,
IE-KD) with `tf.profiler.experimental`, reads the XSpace trace it writes (the `xplane.pb`,
parsed with the protobuf TensorFlow ships, so no TensorBoard plugin is needed) and prints,
per variant, the total op time by op type (summed over threads, per step) and the share of
each; then what IE-KD adds on top of student + teacher, by op type. The raw traces stay in
bench/results/profile/ (open them with `tensorboard --logdir bench/results/profile` and the
profile plugin if installed).

    .venv/bin/python bench/profile_step.py              # CIFAR pair, batch 128, 3 steps each
    .venv/bin/python bench/profile_step.py --quick      # batch 32, 2 steps each
    .venv/bin/python bench/profile_step.py --patches=keras_bn+sliced_shortcut  # bench/experiments/
"""

import collections
import glob
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import _models  # noqa: E402


def parse_args(argv=None):
    parser = _common.argument_parser(__doc__, "profile", repetitions=None, patches=True)
    parser.add_argument("--top", type=int, default=14, help="op types listed per variant")
    return _common.parse_args(parser, argv)


def op_times(logdir):
    """Total duration (s) by op type and by op name of the TF op events in a trace directory.

    TF's CPU executor emits one TraceMe event per op kernel on its tf_Compute threads, named
    "scope/op_name:OpType" (oneDNN kernels as "_MklNative..."); its own bookkeeping events
    ("ExecutorState::Process", ...) are skipped."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    by_type = collections.Counter()
    by_name = collections.Counter()
    paths = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
    for path in paths:
        space = xplane_pb2.XSpace()
        with open(path, "rb") as f:
            space.ParseFromString(f.read())
        for plane in space.planes:
            if not plane.name.startswith("/host:CPU"):
                continue
            metadata = plane.event_metadata
            for line in plane.lines:
                if not line.name.startswith("tf_Compute"):
                    continue  # the executor's op kernels run on the tf_Compute threads
                for event in line.events:
                    name = metadata[event.metadata_id].name
                    if "::" in name or ":" not in name:
                        continue  # executor bookkeeping, not an op kernel
                    op_name, _, op_type = name.rpartition(":")
                    seconds = event.duration_ps * 1e-12
                    by_type[op_type] += seconds
                    by_name[op_name] += seconds
    return by_type, by_name


def profile_variant(tf, step, steps, logdir):
    """(op time by type, by name, wall seconds per step while profiling)."""
    shutil.rmtree(logdir, ignore_errors=True)
    tf.profiler.experimental.start(logdir)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    wall = (time.perf_counter() - start) / steps
    tf.profiler.experimental.stop()
    return (*op_times(logdir), wall)


def main(argv=None):
    args = parse_args(argv)
    tf, info = _common.start_tensorflow(args)
    if args.patches:
        from experiments import patches

        patches.apply(args.patches)
        args.output += "_patched"
    import keras

    pair = _models.get_pair(args.pair, _common.batch_size(args, args.pair))
    keras.utils.set_random_seed(0)
    batches = _common.random_batches(pair.input_shape, pair.num_classes, pair.batch_size)
    teacher = _models.build_model(pair.teacher, pair)
    iekd, _ = _models.ie_distiller(pair, teacher)
    variants = {
        "student_only": _common.keras_step(
            _models.student_trainer(pair), _common.cycling_iterator(tf, batches)
        ),
        "teacher_infer": _models.teacher_inference_step(
            tf, teacher, _common.cycling_iterator(tf, batches)
        ),
        "iekd": _common.keras_step(iekd, _common.cycling_iterator(tf, batches)),
    }
    for step in variants.values():
        for _ in range(args.warmup):
            step()

    root = os.path.join(_common.RESULTS_DIR, args.output)
    results = {"machine": info, "settings": vars(args), "variants": {}}
    per_step = {}
    for name, step in variants.items():
        by_type, by_name, wall = profile_variant(tf, step, args.steps, os.path.join(root, name))
        per_step[name] = {k: v / args.steps for k, v in by_type.items()}
        total = sum(per_step[name].values())
        top = by_type.most_common(args.top)
        rows = [
            [op_type, 1e3 * seconds / args.steps, 100.0 * seconds / args.steps / total]
            for op_type, seconds in top
        ]
        _common.print_table(
            f"{name}: op time per step by op type (summed over threads), total "
            f"{1e3 * total:.0f} ms; wall {1e3 * wall:.0f} ms/step",
            ["op type", "ms/step", "%"],
            rows,
        )
        results["variants"][name] = {
            "total_op_ms_per_step": round(1e3 * total, 1),
            "wall_ms_per_step": round(1e3 * wall, 1),
            "by_type_ms_per_step": {
                k: round(1e3 * v / args.steps, 2) for k, v in by_type.most_common()
            },
            "top_ops_ms_per_step": {
                k: round(1e3 * v / args.steps, 2) for k, v in by_name.most_common(args.top)
            },
        }

    extra = collections.Counter()
    for op_type, seconds in per_step["iekd"].items():
        extra[op_type] = (
            seconds
            - per_step["student_only"].get(op_type, 0.0)
            - per_step["teacher_infer"].get(op_type, 0.0)
        )
    rows = [[k, 1e3 * v] for k, v in sorted(extra.items(), key=lambda kv: -abs(kv[1]))[: args.top]]
    _common.print_table(
        "iekd - (student_only + teacher_infer), op time per step by op type",
        ["op type", "ms/step"],
        rows,
    )
    results["iekd_minus_student_plus_teacher_ms"] = {k: round(v, 2) for k, v in rows}
    _common.write_json(args.output, results)


if __name__ == "__main__":
    main()
