"""Shared helpers of the benchmarks: the flags they share, interleaved timing, medians, tables,
JSON, machine facts.

Every script measures its variants side by side in ONE process, interleaved (A B C A B C ...),
after warm-up calls that absorb tracing and compilation; it reports per-step medians and the
ratios between variants. Absolute times on a shared 2-core machine mean little; ratios of
interleaved medians are what the targets are stated in.
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
RESULTS_DIR = os.path.join(BENCH_DIR, "results")
REPO_ROOT = os.path.dirname(BENCH_DIR)
for _path in (REPO_ROOT, BENCH_DIR):
    if _path not in sys.path:
        sys.path.insert(0, _path)

# --quick: a sanity run of a few minutes (each script may shorten more of its own settings).
QUICK = {"repetitions": 2, "steps": 2, "warmup": 2}
QUICK_CIFAR_BATCH_SIZE = 32


def argument_parser(
    doc,
    output,
    *,
    pairs=None,
    batch_size=True,
    repetitions=5,
    steps=3,
    warmup=3,
    tensorflow=True,
    wait=True,
    patches=False,
):
    """The flags the benchmarks share, with this script's defaults.

    `doc` is the script's docstring (its first paragraph becomes the description), `output`
    the default name of its JSON in bench/results. `pairs` (a default such as
    "cifar,quickstart") gives `--pairs` instead of the single `--pair`; `batch_size=False`, or
    None for `repetitions`, `steps` or `warmup`, leaves that flag out; `tensorflow` adds
    `--deterministic`, `wait` `--max_load` / `--max_wait_s`, `patches` `--patches`. Add the
    script's own flags to the parser, then read them with `parse_args`, e.g.

        parser = _common.argument_parser(__doc__, "vs_keras")
        parser.add_argument("--kinds", default="kd,feat,eval")
        args = _common.parse_args(parser, argv)
    """
    from _models import PAIRS

    parser = argparse.ArgumentParser(
        description=doc.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    if pairs:
        parser.add_argument(
            "--pairs", default=pairs, help=f"comma-separated, some of {', '.join(PAIRS)}"
        )
    else:
        parser.add_argument("--pair", default="cifar", choices=sorted(PAIRS))
    if batch_size:
        parser.add_argument(
            "--batch_size",
            type=int,
            default=0,
            help=f"training batch; 0: the pair's own (--quick: {QUICK_CIFAR_BATCH_SIZE} on cifar)",
        )
    for name, default, help_text in (
        ("repetitions", repetitions, "rounds (interleaved variants) or runs"),
        ("steps", steps, "timed steps of a variant per round"),
        ("warmup", warmup, "untimed steps of each variant first"),
    ):
        if default is not None:
            parser.add_argument(f"--{name}", type=int, default=default, help=help_text)
    if tensorflow:
        parser.add_argument(
            "--deterministic",
            action=argparse.BooleanOptionalAction,
            default=True,
            help="TF op determinism, as scripts/train.py sets by default (config.deterministic)",
        )
    if wait:
        parser.add_argument("--max_load", type=float, default=1.3)
        parser.add_argument(
            "--max_wait_s",
            type=float,
            default=0,
            help="wait up to this long for a 1-minute load average below --max_load",
        )
    if patches:
        parser.add_argument(
            "--patches",
            default="",
            help="build the models with these patches of bench/experiments/, "
            "e.g. keras_bn+sliced_shortcut (the library's previous layers)",
        )
    parser.add_argument("--output", default=output, help="name of the JSON in bench/results")
    parser.add_argument("--quick", action="store_true", help="a sanity run of a few minutes")
    return parser


def parse_args(parser, argv=None, **quick):
    """Parses `argv` and checks the shared flags (`--pairs` becomes a list); --quick shortens
    the settings left at their defaults (`QUICK`, then `quick`: this script's own) and appends
    "_quick" to --output."""
    from _models import PAIRS

    args = parser.parse_args(argv)
    if hasattr(args, "pairs"):
        args.pairs = comma_list(parser, args, "pairs", PAIRS)
    if getattr(args, "patches", ""):
        from experiments import patches

        unknown = [name for name in patches.names(args.patches) if name not in patches.PATCH_NAMES]
        if unknown:
            parser.error(
                f"--patches: unknown {', '.join(map(repr, unknown))}; expected names from "
                f"{', '.join(patches.PATCH_NAMES)} joined by '+'."
            )
    if args.quick:
        for name, value in {**QUICK, **quick}.items():
            if hasattr(args, name) and getattr(args, name) == parser.get_default(name):
                setattr(args, name, value)
        args.output += "_quick"
    return args


def comma_list(parser, args, flag, choices):
    """The comma-separated values of `args.<flag>`, each one of `choices` (else a usage error);
    `choices` may be a type instead, such as int."""
    text = getattr(args, flag)
    values = [value for value in text.split(",") if value]
    try:
        if isinstance(choices, type):
            return [choices(value) for value in values or [""]]
        if values and all(value in choices for value in values):
            return values
    except ValueError:
        pass
    expected = choices.__name__ if isinstance(choices, type) else ", ".join(choices)
    parser.error(f"--{flag}={text!r}: expected a comma-separated list of {expected}.")


def require_torch(parser):
    """A usage error unless PyTorch, a benchmark-only extra, is installed."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        parser.error(
            f"PyTorch is not installed in {sys.executable}: install the CPU build "
            "(pip install torch --index-url https://download.pytorch.org/whl/cpu), "
            "a benchmark-only extra."
        )


def batch_size(args, pair_name):
    """The training batch of a pair: --batch_size, else 32 for the CIFAR pair under --quick,
    else 0 (the pair's own)."""
    if args.batch_size:
        return args.batch_size
    return QUICK_CIFAR_BATCH_SIZE if args.quick and pair_name == "cifar" else 0


def wait_then_describe(args, extra_packages=()):
    """Waits for a quiet machine (--max_load, --max_wait_s); returns `machine_info` with the
    wait's outcome."""
    loads, quiet = wait_for_quiet_machine(args.max_load, args.max_wait_s)
    info = machine_info(extra_packages)
    info["quiet_machine"] = quiet
    info["load_average_start"] = loads
    return info


def start_tensorflow(args, intra_op_threads=0, inter_op_threads=0, extra_packages=()):
    """`wait_then_describe`, then imports TensorFlow with op determinism as --deterministic
    says; returns (tf, machine facts)."""
    info = wait_then_describe(args, extra_packages)
    tf = configure_tensorflow(intra_op_threads, inter_op_threads)
    if args.deterministic:
        tf.config.experimental.enable_op_determinism()
    return tf, info


def load_average():
    """The 1, 5 and 15-minute load averages."""
    return tuple(round(v, 2) for v in os.getloadavg())


def wait_for_quiet_machine(max_load=1.3, max_wait_s=0, poll_s=20):
    """Polls until the 1-minute load average is below `max_load` or `max_wait_s` has passed.

    Returns the load averages seen last and whether the wait succeeded."""
    deadline = time.monotonic() + max_wait_s
    while True:
        loads = load_average()
        if loads[0] < max_load or time.monotonic() >= deadline:
            return loads, loads[0] < max_load
        print(f"[bench] load average {loads[0]} >= {max_load}: waiting {poll_s} s ...", flush=True)
        time.sleep(poll_s)


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _package_version(name):
    try:
        from importlib import metadata

        return metadata.version(name)
    except Exception:  # noqa: BLE001 - a missing package is reported as None
        return None


def machine_info(extra_packages=()):
    """Facts recorded next to every figure: CPU, cores, versions, load, date."""
    packages = ["keras", "tensorflow", "numpy", *extra_packages]
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "versions": {name: _package_version(name) for name in packages},
        "load_average_start": load_average(),
        "env": {
            key: os.environ.get(key)
            for key in (
                "TF_ENABLE_ONEDNN_OPTS",
                "OMP_NUM_THREADS",
                "TF_NUM_INTRAOP_THREADS",
                "TF_NUM_INTEROP_THREADS",
                "KERAS_BACKEND",
            )
            if os.environ.get(key) is not None
        },
        "git_commit": _git_commit(),
    }


def _git_commit():
    try:
        return (
            subprocess.check_output(
                ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, stderr=subprocess.DEVNULL
            )
            .decode()
            .strip()
        )
    except Exception:  # noqa: BLE001
        return None


def interleave(variants, repetitions, steps_per_repetition, warmup, verbose=True):
    """Times each variant's one-step callable, interleaved.

    Args:
        variants: dict name -> callable running ONE step and returning only when it is done.
        repetitions: rounds; each round runs `steps_per_repetition` steps of every variant in
            turn (the order rotates every round so that no variant always follows another).
        steps_per_repetition: consecutive steps of one variant inside a round.
        warmup: untimed steps of each variant first (tracing, compilation, caches).

    Returns:
        dict name -> list of per-step seconds.
    """
    names = list(variants)
    for name in names:
        start = time.perf_counter()
        for _ in range(warmup):
            variants[name]()
        if verbose:
            print(f"[bench] warm-up {name}: {time.perf_counter() - start:.1f} s", flush=True)
    times = {name: [] for name in names}
    for round_index in range(repetitions):
        shift = round_index % len(names)
        order = names[shift:] + names[:shift]
        for name in order:
            step = variants[name]
            if hasattr(step, "run_timed"):  # timed by another process (see RemoteSteps)
                times[name].extend(step.run_timed(steps_per_repetition))
                continue
            for _ in range(steps_per_repetition):
                start = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - start)
        if verbose:
            medians = ", ".join(f"{n} {statistics.median(times[n]) * 1e3:.0f} ms" for n in names)
            print(f"[bench] round {round_index + 1}/{repetitions}: {medians}", flush=True)
    return times


def summarize(step_times, images_per_step):
    """Median, quartiles and images/s of a list of per-step seconds."""
    ordered = sorted(step_times)
    median = statistics.median(ordered)
    quartiles = statistics.quantiles(ordered, n=4) if len(ordered) >= 2 else [median] * 3
    return {
        "steps": len(ordered),
        "median_ms": round(median * 1e3, 2),
        "q1_ms": round(quartiles[0] * 1e3, 2),
        "q3_ms": round(quartiles[2] * 1e3, 2),
        "images_per_s": round(images_per_step / median, 1),
    }


def summarize_pair(times, pair):
    """`summarize` of every variant of `interleave`'s result; those named "..._eval" ran
    evaluation steps of `pair.eval_batch_size` images, the others `pair.batch_size`."""
    return {
        name: summarize(t, pair.eval_batch_size if name.endswith("_eval") else pair.batch_size)
        for name, t in times.items()
    }


def print_table(title, header, rows):
    """A plain-text table with right-aligned numeric columns."""
    cells = [[str(c) for c in header]] + [[_format(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print()
    print(title)
    for index, row in enumerate(cells):
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if index == 0:
            print("-" * (sum(widths) + 2 * (len(widths) - 1)))


def print_summary(title, summary, median_header="median ms"):
    """The table of `summarize` results, one row per variant."""
    rows = [
        [name, s["median_ms"], s["q1_ms"], s["q3_ms"], s["images_per_s"]]
        for name, s in summary.items()
    ]
    print_table(title, ["variant", median_header, "q1 ms", "q3 ms", "images/s"], rows)


def _format(value):
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    return str(value)


def write_json(name, payload):
    """Writes bench/results/<name>.json and returns its path."""
    os.makedirs(RESULTS_DIR, exist_ok=True)
    payload = dict(payload)
    payload.setdefault("load_average_end", load_average())
    path = os.path.join(RESULTS_DIR, f"{name}.json")
    with open(path, "w") as f:
        json.dump(payload, f, indent=2, sort_keys=False)
        f.write("\n")
    print(f"\n[bench] wrote {os.path.relpath(path, REPO_ROOT)}")
    return path


def configure_tensorflow(intra_op_threads=0, inter_op_threads=0):
    """Imports TensorFlow quietly; optional thread-pool sizes (0 keeps TF's defaults)."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import tensorflow as tf

    if intra_op_threads:
        tf.config.threading.set_intra_op_parallelism_threads(intra_op_threads)
    if inter_op_threads:
        tf.config.threading.set_inter_op_parallelism_threads(inter_op_threads)
    return tf


def cycling_iterator(tf, batches):
    """A tf.data iterator over a few in-memory (x, y) batches, repeated forever: the steps
    see different batches, and no input pipeline cost is measured."""
    dataset = tf.data.Dataset.from_tensor_slices(batches).repeat().prefetch(2)
    return iter(dataset)


def keras_step(model, iterator, kind="train"):
    """One call of the model's own compiled Keras train/test function (what `fit` / `evaluate`
    call per step with steps_per_execution=1), blocking until its loss is on the host."""
    if kind == "train":
        model.make_train_function()
        function = model.train_function
    else:
        model.make_test_function()
        function = model.test_function

    def step():
        logs = function(iterator)
        loss = logs["loss"] if "loss" in logs else next(iter(logs.values()))
        return float(loss)

    return step


def random_batches(shape, num_classes, batch_size, count=4, seed=0):
    """`count` batches of normalised random images and labels, as numpy arrays."""
    import numpy as np

    rng = np.random.default_rng(seed)
    images = rng.standard_normal((count, batch_size, *shape)).astype("float32")
    labels = rng.integers(0, num_classes, size=(count, batch_size)).astype("int32")
    return images, labels


def peak_rss_mb():
    """This process's peak resident set size so far, in MiB (Linux reports KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class RemoteSteps:
    """Steps run by a worker process (e.g. bench/jax_step.py --worker in another venv) that
    times them itself, so that they can be interleaved with this process's steps. The worker
    idles on stdin between requests."""

    def __init__(self, command, env=None, timeout_s=900):
        import json as _json

        self._json = _json
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=REPO_ROOT,
        )
        ready = self._read()
        self.names = ready["ready"]
        self.info = ready.get("info", {})

    def _read(self):
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"worker exited with {self.process.wait()}")
            if line.startswith(("{", "[")):
                return self._json.loads(line)

    def step(self, name):
        """A callable for `interleave`: one untimed step when called, `run_timed(n)` for n."""
        remote = self

        class _Step:
            def __call__(self):
                return remote.run(name, 1)

            def run_timed(self, count):
                return remote.run(name, count)

        return _Step()

    def run(self, name, count):
        self.process.stdin.write(f"{name} {count}\n")
        self.process.stdin.flush()
        return self._read()

    def close(self):
        if self.process.poll() is None:
            self.process.stdin.write("quit\n")
            self.process.stdin.flush()
            self.process.wait(timeout=60)


def serve_steps(steps, warmup=0, info=None):
    """Worker side of RemoteSteps: after `warmup` untimed steps of each, every stdin line
    "name count" runs `count` steps of `name` and answers with a JSON list of per-step seconds;
    "quit" or end of input stops. `info` (a JSON-able dict: the worker's settings as it found
    them) becomes the RemoteSteps' `info`."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    print(json.dumps({"ready": list(steps), "info": info or {}}), flush=True)
    for line in sys.stdin:
        parts = line.split()
        if not parts or parts[0] == "quit":
            break
        name, count = parts[0], int(parts[1])
        times = []
        for _ in range(count):
            start = time.perf_counter()
            steps[name]()
            times.append(time.perf_counter() - start)
        print(json.dumps(times), flush=True)
