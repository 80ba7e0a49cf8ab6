"""Is the input pipeline ever the bottleneck? tf.data throughput vs the training step, one run.

For CIFAR shapes (an in-memory `ImageData` of random uint8 32x32x3 images, the paper's
reflect-pad-4 crop + flip, CIFAR-10 mean/std: the same pipeline `load_cifar` feeds) and for the
quickstart's real digits (`load_digits(16)`, pad + crop), interleaved:

  pipeline          `ImageData.train_dataset(...)` alone: batches pulled as fast as it gives
                    them from one iterator (after draining what it prefetched meanwhile)
  step_fixed        the IE-KD Distiller train step on fixed in-memory batches
  step_fed          the same step fed by the pipeline (what `fit` does): the pipeline then
                    shares the 2 cores with the step

Targets: pipeline images/s >= 5 x the step's; step_fed / step_fixed time ~1.0 (no stall).

    .venv/bin/python bench/input_pipeline.py
    .venv/bin/python bench/input_pipeline.py --augmentation=RandAugment   # + a Keras layer
    .venv/bin/python bench/input_pipeline.py --quick
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import _models  # noqa: E402


def parse_args(argv=None):
    parser = _common.argument_parser(__doc__, "input_pipeline", pairs="cifar,quickstart", warmup=2)
    parser.add_argument("--pipeline_batches", type=int, default=100, help="batches timed per round")
    parser.add_argument("--train_examples", type=int, default=10_000, help="CIFAR-shaped set")
    parser.add_argument(
        "--augmentation", default="", help="extra Keras layer after crop+flip, e.g. RandAugment"
    )
    return _common.parse_args(parser, argv, pipeline_batches=20, warmup=1)


def image_data(pair_name, train_examples):
    import numpy as np

    from iekd_keras.data.image_data import ImageData
    from iekd_keras.data.sources import load_digits

    if pair_name == "quickstart":
        return load_digits(16)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(train_examples, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=train_examples).astype("int32")
    return ImageData(
        name="cifar_shaped_random",
        train_images=images,
        train_labels=labels,
        test_images=images[:256],
        test_labels=labels[:256],
        num_classes=10,
        mean=(125.3 / 255, 123.0 / 255, 113.9 / 255),
        std=(63.0 / 255, 62.1 / 255, 66.7 / 255),
        padding=4,
        flip=True,
    )


class PipelineRounds:
    """A self-timed variant: the steady-state throughput of one long-lived iterator.

    Each round first pulls `drain` batches untimed (they may have been prefetched while the
    other variants ran, and would look free), then times `batches` batches; every batch is
    credited the round's mean time. A fresh iterator is not used per round: its start-up
    (150-300 ms here: the first epoch's permutation, function instantiation) happens once per
    run in training, not once per batch."""

    def __init__(self, dataset, batches, drain=32):
        self.iterator = iter(dataset)
        self.batches = batches
        self.drain = drain

    def __call__(self):
        return self.run_timed(1)

    def run_timed(self, count):
        for _ in range(self.drain):
            next(self.iterator)
        start = time.perf_counter()
        for _ in range(self.batches):
            next(self.iterator)
        mean = (time.perf_counter() - start) / self.batches
        return [mean] * count


def main(argv=None):
    args = parse_args(argv)
    tf, info = _common.start_tensorflow(args)
    import keras

    results = {"machine": info, "settings": vars(args), "pairs": {}}
    for pair_name in args.pairs:
        pair = _models.get_pair(pair_name, _common.batch_size(args, pair_name))
        data = image_data(pair_name, args.train_examples)
        augmentation = _augmentation_layers(args.augmentation)
        keras.utils.set_random_seed(0)

        dataset = data.train_dataset(
            pair.batch_size, seed=0, epochs=10_000, augmentation=augmentation
        )

        teacher = _models.build_model(pair.teacher, pair)
        fixed, _ = _models.ie_distiller(pair, teacher)
        fed, _ = _models.ie_distiller(pair, teacher)
        batches = _common.random_batches(pair.input_shape, pair.num_classes, pair.batch_size)
        variants = {
            "pipeline": PipelineRounds(dataset, args.pipeline_batches),
            "step_fixed": _common.keras_step(fixed, _common.cycling_iterator(tf, batches)),
            "step_fed": _common.keras_step(fed, iter(dataset)),
        }
        print(
            f"\n[bench] pair {pair_name}: {pair.teacher} -> {pair.student}, batch "
            f"{pair.batch_size}, data {data.name} {data.input_shape}"
        )
        times = _common.interleave(variants, args.repetitions, args.steps, args.warmup)
        summary = {name: _common.summarize(t, pair.batch_size) for name, t in times.items()}
        ratios = {
            "pipeline_over_step_images_per_s": round(
                summary["pipeline"]["images_per_s"] / summary["step_fixed"]["images_per_s"], 2
            ),
            "step_fed_over_step_fixed_time": round(
                summary["step_fed"]["median_ms"] / summary["step_fixed"]["median_ms"], 3
            ),
        }
        results["pairs"][pair_name] = {
            "pair": vars(pair),
            "data": data.name,
            "augmentation": args.augmentation or "pad+crop(+flip)",
            "summary": summary,
            "ratios": ratios,
        }
        _common.print_summary(
            f"{pair_name}: batch {pair.batch_size}, {data.name} "
            f"{'x'.join(map(str, data.input_shape))}, augmentation "
            f"{args.augmentation or 'pad+crop' + ('+flip' if data.flip else '')}",
            summary,
            median_header="ms/batch",
        )
        print(
            f"  pipeline / step images/s = {ratios['pipeline_over_step_images_per_s']}"
            "  (target >= 5)"
        )
        print(f"  step fed / step fixed    = {ratios['step_fed_over_step_fixed_time']}")
    _common.write_json(args.output, results)


def _augmentation_layers(name):
    if not name:
        return ()
    from iekd_keras.data.batch_augmentation import build_augmentation_layers

    return build_augmentation_layers(({"name": name, "kwargs": {}},))


if __name__ == "__main__":
    main()
