"""A markdown table and PNG plots over finished runs: one row per recipe (its runs differ only by
their seed), mean ± std over the seeds, and each method's paired difference to the student
alone of the same seed with a 95% confidence interval (iekd_keras/experiment/report.py).

    python scripts/report.py --output=reports/replication runs/replication/*/seed_*

Errors are one sentence on stderr (exit code 2 for flag problems, 1 otherwise); IEKD_DEBUG=1
shows the full traceback.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _cli import FlagMisuse, run_script  # noqa: E402
from absl import flags  # noqa: E402

_OUTPUT = flags.DEFINE_string("output", "report", "Directory of report.md and the plots.")


def main(argv):
    workdirs = argv[1:]
    if not workdirs:
        raise FlagMisuse("Give one or more run workdirs (each holding a results.json).")
    from pathlib import Path

    from iekd_keras.experiment.report import (
        PAIRING_NOTE,
        collect_rows,
        markdown_table,
        plot_runs,
    )

    table = markdown_table(collect_rows(workdirs))
    output = Path(_OUTPUT.value)
    output.mkdir(parents=True, exist_ok=True)
    plots = plot_runs(workdirs, output)
    images = [f"![{name}]({path.name})" for name, path in plots.items()]
    lines = [table, "", PAIRING_NOTE, "", *images]
    (output / "report.md").write_text("\n".join(lines) + "\n")
    print(f"{table}\n\n{PAIRING_NOTE}")
    print(f"\nWritten: {output / 'report.md'}, " + ", ".join(str(p) for p in plots.values()))


if __name__ == "__main__":
    run_script(main, positional=True)
