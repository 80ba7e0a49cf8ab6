"""Checks that run in a process of their own, and the tests that launch them.

Some checks need a fresh process: TensorFlow's logical devices (MirroredStrategy over two CPUs),
JAX's host device count and the Keras backend are fixed when they are first set up or imported,
and determinism settings are process-wide. Such a check is a module under tests/, run with
`python -m` from the repository root (so `tests.*`, `configs` and `iekd_keras` import as in
pytest); it takes its cases on the command line and writes a JSON summary to `--out`. Its output
goes to files, not pipes, so that a check left running in the background never blocks on a full
pipe. This module imports only the standard library: a check imports it before or after its own
device set-up alike.

Launching side (a test):
    >>> summary = run_check("tests.losses.mirrored_crd_check")
    >>> summaries = finish([start_check(MODULE, *cases) for cases in GROUPS], timeout=240)

Check side (the module's end):
    >>> if __name__ == "__main__":
    ...     check_main(__doc__, summarise, cases=CASES)  # summarise(cases) -> a JSON-able dict
"""

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def check_env(backend="tensorflow", **variables):
    """This process's environment, TensorFlow quiet, Keras on `backend`, plus `variables`."""
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_BACKEND": backend, **variables}


@dataclasses.dataclass(frozen=True)
class Finished:
    """How a check ended: its exit status and everything it printed."""

    command: tuple
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool

    def report(self, chars=4000):
        """The end of the output, for an assertion message."""
        ending = "killed after its timeout" if self.timed_out else f"exit {self.returncode}"
        return (
            f"{' '.join(self.command)}: {ending}\n"
            f"--- stdout ---\n{self.stdout[-chars:]}\n--- stderr ---\n{self.stderr[-chars:]}"
        )


class Check:
    """A started check. `wait` gives how it ended, `result` its summary (asserting success)."""

    def __init__(self, arguments, env=None, summary=True):
        self._folder = tempfile.TemporaryDirectory(prefix="check_")
        folder = Path(self._folder.name)
        self._out = folder / "summary.json" if summary else None
        out = ["--out", str(self._out)] if summary else []
        self.command = (sys.executable, *map(str, arguments), *out)
        self._logs = [open(folder / name, "w+b") for name in ("stdout.log", "stderr.log")]
        self.process = subprocess.Popen(
            self.command,
            cwd=REPO_ROOT,
            env=check_env() if env is None else env,
            stdout=self._logs[0],
            stderr=self._logs[1],
        )
        self._finished = self._summary = None

    def wait(self, timeout):
        """Waits up to `timeout` seconds (then kills the check); how it ended."""
        if self._finished is None:
            timed_out = False
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                self.stop()
            stdout, stderr = (self._read(log) for log in self._logs)
            self._finished = Finished(
                self.command, self.process.returncode, stdout, stderr, timed_out
            )
            if self._out is not None and self._out.exists():
                self._summary = self._out.read_text()
            self.close()
        return self._finished

    def result(self, timeout):
        """The JSON summary (or, for a check without one, how it ended) once it succeeded."""
        finished = self.wait(timeout)
        assert finished.returncode == 0, finished.report()
        if self._out is None:
            return finished
        assert self._summary is not None, f"no summary was written\n{finished.report()}"
        return json.loads(self._summary)

    def stop(self):
        """Kills the check if it still runs."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def close(self):
        """Stops the check and removes its files (what `wait` read is kept)."""
        self.stop()
        for log in self._logs:
            log.close()
        self._folder.cleanup()

    @staticmethod
    def _read(log):
        log.seek(0)
        return log.read().decode(errors="replace")


def start_check(module, *arguments, env=None, summary=True):
    """Starts `python -m module *arguments` (and `--out FILE` when it writes a summary)."""
    return Check(["-m", module, *arguments], env=env, summary=summary)


def run_check(module, *arguments, env=None, summary=True, timeout=240):
    """Runs a check to its end; its JSON summary, or how it ended when `summary` is False."""
    check = start_check(module, *arguments, env=env, summary=summary)
    try:
        return check.result(timeout)
    finally:
        check.close()


def finish(checks, timeout, succeed=True):
    """Waits for checks started side by side, each up to `timeout` seconds, then closes them all.

    Their results (`Check.result`, asserting success) or, with `succeed=False`, how they ended.
    """
    try:
        return [check.result(timeout) if succeed else check.wait(timeout) for check in checks]
    finally:
        for check in checks:
            check.close()


def run_python(code, env=None, timeout=120):
    """Runs `python -c code` from the repository root to its end; how it ended (successfully)."""
    check = Check(["-c", code], env=env, summary=False)
    try:
        return check.result(timeout)
    finally:
        check.close()


def check_main(doc, summarise, cases=None, argv=None):
    """The command line of a check: `[CASE ...] [--out FILE]`; writes `summarise(...)` as JSON.

    With `cases`, the chosen ones (in the order given; all by default) are passed to
    `summarise`; an unknown one is refused. The summary goes to `--out`, else to stdout.
    """
    parser = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    if cases is not None:
        parser.add_argument("cases", nargs="*", help=f"any of {list(cases)} (default: all)")
    parser.add_argument("--out", help="write the JSON summary here instead of stdout")
    args = parser.parse_args(argv)
    if cases is None:
        summary = summarise()
    else:
        unknown = sorted(set(args.cases) - set(cases))
        if unknown:
            parser.error(f"unknown cases {unknown}; expected any of {list(cases)}")
        summary = summarise(list(args.cases or cases))
    text = json.dumps(summary, indent=1, sort_keys=True)
    if args.out:
        Path(args.out).write_text(text)
    else:
        print(text)
