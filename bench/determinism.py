"""What TensorFlow's op determinism costs the library's training steps on this CPU, one run.

`tf.config.experimental.enable_op_determinism()` is process-global, so each mode runs in its
own worker process, which idles on stdin between requests while this process interleaves
blocks of timed steps between them (on, off, [xla], rotated every round):

  on   op determinism enabled, as `config.deterministic=None` (the default) chooses for a CPU
       run without XLA, and as `True` forces
  off  op determinism not enabled (`config.deterministic=False`)
  xla  op determinism off and `jit_compile=True` (Keras drops XLA when determinism is on)

Each worker builds, with the same seed and bench/_models.py's builders, the student alone
(`StandaloneTrainer`, ResNet-20) and the IE-KD `Distiller` (ResNet-56 -> ResNet-20 + teacher
encoder), and runs their compiled Keras train functions (what `fit` calls per step) on the
same fixed random batches (CIFAR shapes, batch 128; --quick: 32). Reported: images/s per mode
and step, the speed ratios off / on (> 1: determinism costs that much) and xla / off, their
range over the rounds, each worker's settings as it found them (determinism enabled, XLA kept)
and the load average at the start, after each round and at the end.

    .venv/bin/python bench/determinism.py                       # ~5 min on a quiet machine
    .venv/bin/python bench/determinism.py --modes=on,off        # without the XLA worker
    .venv/bin/python bench/determinism.py --quick
"""

import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import _models  # noqa: E402

MODES = ("on", "off", "xla")
VARIANTS = ("student", "iekd")


def parse_args(argv=None):
    parser = _common.argument_parser(__doc__, "determinism", repetitions=6, tensorflow=False)
    parser.add_argument("--modes", default="on,off,xla", help=f"some of {', '.join(MODES)}")
    parser.add_argument("--variants", default="student,iekd", help=f"some of {', '.join(VARIANTS)}")
    parser.add_argument(
        "--worker", default="", choices=("", *MODES), help="internal: serve this mode's steps"
    )
    args = _common.parse_args(parser, argv)
    args.modes = _common.comma_list(parser, args, "modes", MODES)
    args.variants = _common.comma_list(parser, args, "variants", VARIANTS)
    if "on" not in args.modes and not args.worker:
        parser.error(f"--modes={','.join(args.modes)}: expected 'on' among them (the reference).")
    return args


def build_steps(tf, pair, mode, variants):
    """This worker's one-step callables and what it found: (steps, info)."""
    import keras
    from tensorflow.python.framework.config import is_op_determinism_enabled

    keras.utils.set_random_seed(0)
    jit_compile = mode == "xla"
    batches = _common.random_batches(pair.input_shape, pair.num_classes, pair.batch_size)
    models = {}
    if "student" in variants:
        models["student"] = _models.student_trainer(pair, jit_compile)
    if "iekd" in variants:
        teacher = _models.build_model(pair.teacher, pair)
        models["iekd"], _ = _models.ie_distiller(pair, teacher, jit_compile=jit_compile)
    steps = {
        name: _common.keras_step(model, _common.cycling_iterator(tf, batches))
        for name, model in models.items()
    }
    info = {
        "op_determinism": bool(is_op_determinism_enabled()),
        "jit_compile": {name: bool(model.jit_compile) for name, model in models.items()},
    }
    return steps, info


def serve(args, pair):
    tf = _common.configure_tensorflow()
    if args.worker == "on":
        tf.config.experimental.enable_op_determinism()
    steps, info = build_steps(tf, pair, args.worker, args.variants)
    _common.serve_steps(steps, args.warmup, info)


def start_workers(args, pair):
    here = os.path.abspath(__file__)
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2")
    workers = {}
    try:
        for mode in args.modes:
            print(f"[bench] starting the '{mode}' worker (build, trace, warm up) ...", flush=True)
            workers[mode] = _common.RemoteSteps(
                [
                    sys.executable,
                    here,
                    f"--worker={mode}",
                    f"--pair={args.pair}",
                    f"--batch_size={pair.batch_size}",
                    f"--warmup={args.warmup}",
                    f"--variants={','.join(args.variants)}",
                ],
                env=env,
            )
            print(f"[bench] '{mode}' worker ready: {workers[mode].info}", flush=True)
    except BaseException:
        close_workers(workers)
        raise
    return workers


def close_workers(workers):
    for worker in workers.values():
        worker.close()


def run_rounds(variants, args):
    """`_common.interleave` one round at a time (so the load is recorded after each), the order
    rotated every round. Returns (name -> per-step seconds, per round: name -> median s, loads)."""
    names = list(variants)
    times = {name: [] for name in names}
    rounds, loads = [], []
    for index in range(args.repetitions):
        shift = index % len(names)
        order = {name: variants[name] for name in names[shift:] + names[:shift]}
        round_times = _common.interleave(order, 1, args.steps, 0, verbose=False)
        for name, seconds in round_times.items():
            times[name].extend(seconds)
        rounds.append({name: statistics.median(s) for name, s in round_times.items()})
        loads.append(_common.load_average()[0])
        medians = ", ".join(f"{name} {rounds[-1][name] * 1e3:.0f} ms" for name in names)
        print(
            f"[bench] round {index + 1}/{args.repetitions} (load {loads[-1]}): {medians}",
            flush=True,
        )
    return times, rounds, loads


def speed_ratios(summary, rounds, args):
    """images/s of off / on, xla / on and xla / off per step, with their range over rounds."""
    ratios = {}
    for variant in args.variants:
        for faster, slower in (("off", "on"), ("xla", "on"), ("xla", "off")):
            if faster not in args.modes or slower not in args.modes:
                continue
            a, b = f"{variant}_{faster}", f"{variant}_{slower}"
            per_round = [r[b] / r[a] for r in rounds]
            ratios[f"{variant}_{faster}_over_{slower}"] = {
                "ratio": round(summary[a]["images_per_s"] / summary[b]["images_per_s"], 3),
                "rounds_min": round(min(per_round), 3),
                "rounds_max": round(max(per_round), 3),
            }
    return ratios


def main(argv=None):
    args = parse_args(argv)
    pair = _models.get_pair(args.pair, _common.batch_size(args, args.pair))
    if args.worker:
        serve(args, pair)
        return
    info = _common.wait_then_describe(args)
    print(f"[bench] {pair.teacher} -> {pair.student}, batch {pair.batch_size}, modes {args.modes}")
    workers = start_workers(args, pair)
    try:
        variants = {
            f"{variant}_{mode}": workers[mode].step(variant)
            for variant in args.variants
            for mode in args.modes
        }
        info["load_average_timed_start"] = _common.load_average()
        times, rounds, loads = run_rounds(variants, args)
    finally:
        close_workers(workers)

    summary = {name: _common.summarize(t, pair.batch_size) for name, t in times.items()}
    ratios = speed_ratios(summary, rounds, args)
    _common.print_summary(
        f"{pair.teacher} -> {pair.student}, batch {pair.batch_size}: op determinism on / off"
        + (" / off + XLA" if "xla" in args.modes else ""),
        summary,
    )
    for name, ratio in ratios.items():
        print(f"  {name} = {ratio['ratio']}  (rounds {ratio['rounds_min']}-{ratio['rounds_max']})")
    print(f"  load average: start {info['load_average_start']}, rounds {loads}")
    _common.write_json(
        args.output,
        {
            "machine": info,
            "settings": vars(args),
            "workers": {mode: worker.info for mode, worker in workers.items()},
            "summary": summary,
            "ratios": ratios,
            "rounds_median_ms": [
                {name: round(s * 1e3, 1) for name, s in r.items()} for r in rounds
            ],
            "load_average_rounds": loads,
        },
    )


if __name__ == "__main__":
    main()
