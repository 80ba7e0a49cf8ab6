"""Peak resident memory of a distillation run vs a student-only run.

Each run is a fresh process (peak RSS only grows, so runs cannot share one) doing what
`scripts/train.py` does for a stage, shortened: build the models, compile, `fit` on the real
`ImageData.train_dataset` pipeline (CIFAR-shaped random uint8 images, or the quickstart digits)
for a few steps. Runs alternate (student, iekd, student, iekd, ...) and the medians of each
kind are reported: peak RSS after `import tensorflow` + keras (the runtime), after building
and compiling, and after training; the ratio iekd / student of the peaks and of the peaks
minus the runtime.

    .venv/bin/python bench/memory.py
    .venv/bin/python bench/memory.py --quick
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import _models  # noqa: E402

KINDS = ("student", "iekd", "iekd_kd")


def parse_args(argv=None):
    parser = _common.argument_parser(
        __doc__, "memory", repetitions=2, steps=15, warmup=None, tensorflow=False
    )
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"some of {', '.join(KINDS)}")
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = _common.parse_args(parser, argv, steps=3, repetitions=1)
    args.kinds = _common.comma_list(parser, args, "kinds", KINDS)
    return args


def child(args):
    """One run; prints a JSON line of peak RSS checkpoints (MiB)."""
    tf = _common.configure_tensorflow()
    import keras
    from input_pipeline import image_data

    checkpoints = {"runtime": _common.peak_rss_mb()}
    pair = _models.get_pair(args.pair, args.batch_size)
    data = image_data(args.pair, 10_000)
    keras.utils.set_random_seed(0)
    if args.child == "student":
        model = _models.student_trainer(pair)
    else:
        teacher = _models.build_model(pair.teacher, pair)
        model, _ = _models.ie_distiller(pair, teacher, kd=args.child == "iekd_kd")
    dataset = data.train_dataset(pair.batch_size, seed=0, epochs=1_000)
    checkpoints["built"] = _common.peak_rss_mb()
    model.fit(dataset, steps_per_epoch=args.steps, epochs=1, verbose=0)
    checkpoints["trained"] = _common.peak_rss_mb()
    checkpoints["tensorflow"] = tf.__version__
    print(json.dumps(checkpoints), flush=True)


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        child(args)
        return
    info = _common.wait_then_describe(args)
    kinds = args.kinds
    pair = _models.get_pair(args.pair, _common.batch_size(args, args.pair))
    runs = {kind: [] for kind in kinds}
    for repetition in range(args.repetitions):
        for kind in kinds:
            command = [
                sys.executable,
                os.path.abspath(__file__),
                f"--child={kind}",
                f"--pair={args.pair}",
                f"--batch_size={pair.batch_size}",
                f"--steps={args.steps}",
            ]
            output = subprocess.run(
                command, capture_output=True, text=True, check=True, cwd=_common.REPO_ROOT
            ).stdout
            result = json.loads([line for line in output.splitlines() if line.startswith("{")][-1])
            runs[kind].append(result)
            print(
                f"[bench] run {repetition + 1} {kind}: peak {result['trained']:.0f} MiB "
                f"(runtime {result['runtime']:.0f}, built {result['built']:.0f})",
                flush=True,
            )
    summary = {}
    for kind, results in runs.items():
        summary[kind] = {
            key: round(statistics.median(r[key] for r in results), 1)
            for key in ("runtime", "built", "trained")
        }
        summary[kind]["trained_minus_runtime"] = round(
            summary[kind]["trained"] - summary[kind]["runtime"], 1
        )
    ratios = {}
    for kind in kinds:
        if kind != "student" and "student" in summary:
            ratios[f"{kind}_over_student_peak"] = round(
                summary[kind]["trained"] / summary["student"]["trained"], 3
            )
            ratios[f"{kind}_over_student_peak_minus_runtime"] = round(
                summary[kind]["trained_minus_runtime"]
                / summary["student"]["trained_minus_runtime"],
                3,
            )
    rows = [
        [k, s["runtime"], s["built"], s["trained"], s["trained_minus_runtime"]]
        for k, s in summary.items()
    ]
    _common.print_table(
        f"peak RSS (MiB), {pair.teacher} -> {pair.student}, batch {pair.batch_size}, "
        f"{args.steps} fit steps, median of {args.repetitions} runs",
        ["run", "runtime", "built", "trained", "trained - runtime"],
        rows,
    )
    for key, value in ratios.items():
        print(f"  {key} = {value}")
    _common.write_json(
        args.output,
        {
            "machine": info,
            "settings": vars(args),
            "runs": runs,
            "summary": summary,
            "ratios": ratios,
        },
    )


if __name__ == "__main__":
    main()
