"""Micro-benchmark: FeatureSplit's natural split as two slices vs one `keras.ops.split`.

`FeatureSplit` returns `features[..., :count], features[..., count:]`: on TensorFlow two
StridedSlice kernels forward and two StridedSliceGrad (scatters into zeros) plus their sum
backward. `keras.ops.split(features, [count], axis=-1)` is one Split forward and one Concat
backward. This times forward + backward of both on the student's feature map of the CIFAR pair
(batch 128, 8x8x64, as in the IE-KD step), interleaved in one process, and checks that they are
bit-identical.

    .venv/bin/python bench/experiments/feature_split.py [--batch_size=128] [--quick]
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import _common  # noqa: E402


def parse_args(argv=None):
    parser = _common.argument_parser(
        __doc__, "experiment_feature_split", batch_size=False, repetitions=5, steps=20, warmup=5
    )
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--channels", type=int, default=64)
    return _common.parse_args(parser, argv)


def main(argv=None):
    args = parse_args(argv)
    tf, info = _common.start_tensorflow(args)
    import numpy as np

    shape = (args.batch_size, 8, 8, args.channels)
    count = args.channels // 2
    rng = np.random.default_rng(0)
    features = tf.constant(rng.normal(size=shape).astype("float32"))
    weights = [
        tf.constant(rng.normal(size=(*shape[:3], c)).astype("float32")) for c in (count,) * 2
    ]

    def sliced(x):
        return x[..., :count], x[..., count:]

    def split(x):
        import keras

        return tuple(keras.ops.split(x, [count], axis=-1))

    def step_of(function):
        @tf.function
        def step(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                first, second = function(x)
                loss = tf.reduce_sum(first * weights[0]) + tf.reduce_sum(second * weights[1])
            return first, second, tape.gradient(loss, x)

        return step

    steps = {"slices": step_of(sliced), "split": step_of(split)}
    results = {name: [np.asarray(t) for t in step(features)] for name, step in steps.items()}
    identical = all(
        np.array_equal(a, b) for a, b in zip(results["slices"], results["split"], strict=True)
    )
    variants = {name: (lambda step=step: step(features)[2].numpy()) for name, step in steps.items()}
    times = _common.interleave(variants, args.repetitions, args.steps, args.warmup)
    summary = {name: _common.summarize(t, args.batch_size) for name, t in times.items()}
    ratio = round(summary["slices"]["median_ms"] / summary["split"]["median_ms"], 3)
    _common.print_summary(f"FeatureSplit forward+backward, {shape}", summary)
    print(f"  bit-identical = {identical}, split_speedup = {ratio}")
    _common.write_json(
        args.output,
        {
            "machine": info,
            "settings": vars(args),
            "summary": summary,
            "identical": identical,
            "split_speedup": ratio,
        },
    )


if __name__ == "__main__":
    main()
