"""Every error a user can cause, through the real scripts: one sentence, the exit code, no
traceback (IEKD_DEBUG=1 shows it).

The scripts run as subprocesses, several at a time (each one that loads a config imports
TensorFlow, ~5-10 s); mistakes in the flags or in `--config.*` keys are found before that.
"""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import keras
import pytest

from configs import quickstart
from iekd_keras.experiment.interruption import (
    EpochTracker,
    StageInterrupted,
    interrupts_deferred,
    name_interruption,
)
from iekd_keras.experiment.records import prepare_workdir

ROOT = Path(__file__).parents[2]
QUICKSTART = "--config=configs/quickstart.py"
# Small models so that the runs refused after the config loads build quickly.
# glog lines of TensorFlow's C++ runtime, e.g. "I0000 00:00:1796196948.98 10130 port.cc:153] ...".
NATIVE_LOG_LINE = re.compile(r"[IWEF]\d{4} \d\d:\d\d:\d\d")
SMALL = ["--config.data.image_size=8", "--config.teacher.model=resnet8"]


def run_script(name, *args, env=None, python_flags=()):
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    environment.pop("IEKD_DEBUG", None)
    environment.update(env or {})
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, *python_flags, str(ROOT / "scripts" / name), *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=240,
    )
    result.wall_s = time.perf_counter() - started
    return result


def script_lines(stderr):
    """stderr without TensorFlow's own C++ start-up log lines (and `-X importtime` lines)."""
    noise = ("WARNING: All log messages before absl::InitializeLog()", "import time:")
    return [
        line
        for line in stderr.splitlines()
        if line.strip() and not line.startswith(noise) and not NATIVE_LOG_LINE.match(line)
    ]


def keras_files(directory):
    """Real files for each way a checkpoint can be unreadable."""
    inputs = keras.Input((8, 8, 1))
    features = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    logits = keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(features))
    two_outputs = directory / "two_outputs.keras"
    keras.Model(inputs, [logits, features], name="two_outputs").save(two_outputs)
    one_output = directory / "one_output.keras"
    keras.Model(inputs, logits, name="one_output").save(one_output)
    truncated = directory / "truncated.keras"
    truncated.write_bytes(two_outputs.read_bytes()[: two_outputs.stat().st_size // 2])
    text = directory / "notes.keras"
    text.write_text("Some notes, not a model.\n")
    not_keras = directory / "archive.keras"
    with zipfile.ZipFile(not_keras, "w") as archive:
        archive.writestr("readme.txt", "hello")
    return {
        "missing": directory / "absent.keras",
        "text": text,
        "truncated": truncated,
        "not_keras": not_keras,
        "one_output": one_output,
    }


def workdir_of_another_config(directory):
    """A workdir whose recorded config has seed 0 (the command line then asks for seed 1)."""
    config = quickstart.get_config("smoke")
    config.data.image_size = 8
    config.teacher.model = "resnet8"
    prepare_workdir(directory, config)
    return directory


def cases(tmp):
    """name -> (script, args, extra environment, python flags)."""
    bad_syntax = tmp / "bad_syntax.py"
    bad_syntax.write_text("def get_config(:\n    pass\n")
    bad_name = tmp / "bad_name.py"
    bad_name.write_text("def get_config(arg=None):\n    return undefined_name\n")
    # Config files that set what the locked base_config() does not have or take.
    recipe = "from iekd_keras.experiment.recipes import digits_quickstart\n\n\n"
    typo = tmp / "typo.py"
    typo.write_text(
        f"{recipe}def get_config(arg=None):\n    config = digits_quickstart()\n"
        "    config.distiller.lamda_inh = 1.0\n    return config\n"
    )
    wrong_type = tmp / "wrong_type.py"
    wrong_type.write_text(
        f"{recipe}def get_config(arg=None):\n    config = digits_quickstart()\n"
        "    config.student.epochs = 'ten'\n    return config\n"
    )
    # A config of the user's own with an untyped None (base_config() has typed placeholders).
    untyped_none = tmp / "untyped_none.py"
    untyped_none.write_text(
        "import ml_collections\n\n\ndef get_config(arg=None):\n"
        "    return ml_collections.ConfigDict({'teacher': {'min_accuracy': None}})\n"
    )
    checkpoints = keras_files(tmp)
    workdir = workdir_of_another_config(tmp / "run")
    train = [QUICKSTART + ":smoke", f"--workdir={tmp / 'unused'}"]
    evaluate = {
        f"checkpoint_{kind}": ("evaluate.py", [QUICKSTART, f"--checkpoint={path}"], {}, ())
        for kind, path in checkpoints.items()
    }
    return {
        # Found before TensorFlow is imported.
        "typo": ("train.py", [*train, "--config.distiller.lamda_inh=1"], {}, ()),
        "typo_importtime": (
            "train.py",
            [*train, "--config.distiller.lamda_inh=1"],
            {},
            ("-X", "importtime"),
        ),
        "typo_debug": (
            "train.py",
            [*train, "--config.distiller.lamda_inh=1"],
            {"IEKD_DEBUG": "1"},
            (),
        ),
        "override_first": ("train.py", ["--config.seed=1", QUICKSTART, "--workdir=/tmp/x"], {}, ()),
        "unknown_group_key": ("train.py", [*train, "--config.distiller.zzz=1"], {}, ()),
        "missing_config": ("train.py", ["--config=configs/absent.py", "--workdir=/tmp/x"], {}, ()),
        "syntax_error": ("train.py", [f"--config={bad_syntax}", "--workdir=/tmp/x"], {}, ()),
        "name_error": ("train.py", [f"--config={bad_name}", "--workdir=/tmp/x"], {}, ()),
        "missing_workdir": ("train.py", [QUICKSTART], {}, ()),
        "missing_config_flag": ("train.py", ["--workdir=/tmp/x"], {}, ()),
        "unknown_flag": ("train.py", [*train, "--workdirr=/tmp/x"], {}, ()),
        "stray_argument": ("train.py", [*train, "extra"], {}, ()),
        "bad_seeds": ("sweep.py", [*train, "--seeds=0,a"], {}, ()),
        "report_without_runs": ("report.py", [], {}, ()),
        "untyped_none": (
            "train.py",
            [f"--config={untyped_none}", "--workdir=/tmp/x", "--config.teacher.min_accuracy=0.5"],
            {},
            (),
        ),
        # Found once the config is loaded (TensorFlow imported).
        "bad_variant": ("train.py", [QUICKSTART + ":bogus", "--workdir=/tmp/x"], {}, ()),
        "wrong_type": ("train.py", [*train, "--config.student.epochs=abc"], {}, ()),
        # A typed placeholder (None by default) takes a value from the command line: -0.5
        # reaches the run's range check, which refuses it before anything trains.
        "placeholder_out_of_range": (
            "train.py",
            [*train, *SMALL, "--config.teacher.min_accuracy=-0.5"],
            {},
            (),
        ),
        "placeholder_bad_value": (
            "train.py",
            [*train, "--config.teacher.min_accuracy=abc"],
            {},
            (),
        ),
        "config_file_typo": ("train.py", [f"--config={typo}", "--workdir=/tmp/x"], {}, ()),
        "config_file_wrong_type": (
            "train.py",
            [f"--config={wrong_type}", "--workdir=/tmp/x"],
            {},
            (),
        ),
        "config_error": ("train.py", [*train, *SMALL, "--config.student.model=resnet18"], {}, ()),
        "other_config": (
            "train.py",
            [QUICKSTART + ":smoke", f"--workdir={workdir}", *SMALL, "--config.seed=1"],
            {},
            (),
        ),
        "report_of_no_run": (
            "report.py",
            [f"--output={tmp / 'report'}", str(tmp / "nothing")],
            {},
            (),
        ),
        **evaluate,
    }, {"checkpoints": checkpoints, "workdir": workdir}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every case started at once (three at a time); tests wait for their own."""
    tmp = tmp_path_factory.mktemp("script_errors")
    table, paths = cases(tmp)
    pool = ThreadPoolExecutor(max_workers=3)
    # Quick cases first, so that their tests need not wait for TensorFlow's imports.
    order = sorted(table, key=lambda name: name in SLOW)
    futures = {}
    for name in order:
        script, args, env, python_flags = table[name]
        futures[name] = pool.submit(run_script, script, *args, env=env, python_flags=python_flags)
    yield futures, paths
    pool.shutdown(wait=True)


SLOW = {
    "bad_variant",
    "wrong_type",
    "placeholder_out_of_range",
    "placeholder_bad_value",
    "config_file_typo",
    "config_file_wrong_type",
    "config_error",
    "other_config",
    "report_of_no_run",
    "checkpoint_missing",
    "checkpoint_text",
    "checkpoint_truncated",
    "checkpoint_not_keras",
    "checkpoint_one_output",
}


def refused(runs, name, exit_code):
    """The case's one error line (after TensorFlow's start-up log, if any)."""
    result = runs[0][name].result()
    assert result.returncode == exit_code, (name, result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    lines = script_lines(result.stderr)
    assert lines, result.stderr
    return result, lines


def one_sentence(runs, name, exit_code):
    result, lines = refused(runs, name, exit_code)
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    return lines[0].removeprefix("error: ")


def with_usage(runs, name):
    """Flag misuse: exit 2, the sentence first, then the script's usage."""
    result, lines = refused(runs, name, 2)
    assert lines[0].startswith("error: ")
    assert "flags:" in lines
    return lines[0].removeprefix("error: ")


def test_override_typo_suggests_the_key(runs):
    message = one_sentence(runs, "typo", 2)
    assert message == (
        "Unknown config key 'distiller.lamda_inh' (from --config.distiller.lamda_inh). "
        "Did you mean 'distiller.lambda_inh'?"
    )


def test_override_typo_is_found_before_tensorflow_is_imported(runs):
    result = runs[0]["typo_importtime"].result()
    assert result.returncode == 2
    imported = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()]
    assert "ml_collections" in imported
    assert not [name for name in imported if name.startswith(("tensorflow", "keras"))]
    assert script_lines(result.stderr)[-1].startswith("error: Unknown config key")


def test_debug_switch_shows_the_traceback(runs):
    result = runs[0]["typo_debug"].result()
    assert result.returncode != 0
    assert "Traceback (most recent call last)" in result.stderr
    assert "BadConfig: Unknown config key 'distiller.lamda_inh'" in result.stderr


def test_override_before_the_config_file(runs):
    assert one_sentence(runs, "override_first", 2) == (
        "--config.seed=1 comes before --config=<file>; give --config first, as the overrides "
        "change the config it loads."
    )


def test_unknown_key_without_a_close_match_lists_the_group(runs):
    message = one_sentence(runs, "unknown_group_key", 2)
    assert message.startswith("Unknown config key 'distiller.zzz' (from --config.distiller.zzz).")
    assert "The keys of 'distiller' are: distance_metric, lambda_exp, lambda_inh, p," in message


def test_config_file_problems(runs):
    assert one_sentence(runs, "missing_config", 2) == (
        "The config file 'configs/absent.py' (from --config) does not exist."
    )
    assert one_sentence(runs, "syntax_error", 2).endswith(
        "bad_syntax.py' has a syntax error at line 1: invalid syntax."
    )
    assert one_sentence(runs, "name_error", 2).endswith(
        "bad_name.py' fails at line 2 in get_config(): NameError: name 'undefined_name' is "
        "not defined."
    )
    assert one_sentence(runs, "bad_variant", 2) == (
        "The config file 'configs/quickstart.py' refuses get_config('bogus'): Unknown config "
        "variant 'bogus'; expected 'smoke' or nothing."
    )


def test_flag_misuse_prints_the_usage_after_the_sentence(runs):
    assert with_usage(runs, "missing_workdir") == "The flag --workdir is required."
    assert with_usage(runs, "missing_config_flag") == (
        "The flag --config is required (e.g. --config=configs/quickstart.py)."
    )
    assert with_usage(runs, "unknown_flag") == (
        "Unknown command line flag 'workdirr'. Did you mean: workdir ?"
    )
    assert with_usage(runs, "stray_argument") == (
        "Unexpected argument 'extra': this script takes only flags (--name=value)."
    )
    assert with_usage(runs, "bad_seeds") == (
        "--seeds=['0', 'a']: expected whole numbers >= 0 separated by commas, e.g. --seeds=0,1,2."
    )
    assert with_usage(runs, "report_without_runs") == (
        "Give one or more run workdirs (each holding a results.json)."
    )


def test_override_values_the_config_cannot_take(runs):
    assert one_sentence(runs, "wrong_type", 2) == (
        "Bad value in --config.student.epochs=abc: expected int like the config's 2 "
        "(invalid literal for int() with base 10: 'abc')."
    )
    assert one_sentence(runs, "placeholder_bad_value", 2) == (
        "Bad value in --config.teacher.min_accuracy=abc: expected float (could not convert "
        "string to float: 'abc')."
    )
    assert one_sentence(runs, "untyped_none", 2) == (
        "--config.teacher.min_accuracy=0.5 cannot be applied: config.teacher.min_accuracy is "
        "None in the config file, so the command line cannot know its type; declare it there "
        "as ml_collections.config_dict.placeholder(<type>)."
    )


def test_a_placeholder_is_set_from_the_command_line(runs):
    """teacher.min_accuracy is None in base_config(), typed float: the command line sets it."""
    assert one_sentence(runs, "placeholder_out_of_range", 2) == (
        "config.teacher.min_accuracy=-0.5 is out of range: expected >= 0."
    )


def test_config_file_setting_what_the_locked_config_refuses(runs):
    typo = one_sentence(runs, "config_file_typo", 2)
    assert typo.endswith(
        "typo.py' sets the unknown config key 'lamda_inh' at line 6 in get_config(): its "
        "config has no such key. Did you mean 'lambda_inh'?"
    )
    assert one_sentence(runs, "config_file_wrong_type", 2).endswith(
        "wrong_type.py' sets config key 'epochs' to 'ten' (str) at line 6 in get_config(); "
        "expected int."
    )


def test_config_error_of_the_run(runs):
    """The run's own checks (here: teacher and student feature maps of different sizes)."""
    message = one_sentence(runs, "config_error", 2)
    assert message.startswith(
        "config.student.model='resnet18' gives 1x1 features but config.teacher.model='resnet8' "
        "gives 2x2 on the dataset's 8x8 images"
    )


def test_workdir_of_another_config(runs):
    workdir = runs[1]["workdir"]
    assert one_sentence(runs, "other_config", 1) == (
        f"The workdir '{workdir}' holds a run made with a different config (recorded -> now: "
        "seed: 0 -> 1); use another --workdir, or pass --allow_config_change to resume it "
        "anyway."
    )
    assert json.loads((workdir / "config.json").read_text())["seed"] == 0


def test_report_of_a_directory_without_results(runs):
    message = one_sentence(runs, "report_of_no_run", 1)
    nothing = runs[1]["checkpoints"]["missing"].parent / "nothing"
    assert message == f"'{nothing / 'results.json'}' does not exist: is '{nothing}' a finished run?"


# What each unreadable checkpoint is told to be (after "The model checkpoint '<path>' ").
CHECKPOINT_PROBLEMS = {
    "missing": "does not exist.",
    "text": (
        "cannot be read: it is not a Keras .keras file (those are zip archives; this one "
        "starts with b'Some')."
    ),
    "truncated": (
        "cannot be read: it is truncated, corrupted or still being written: it starts as a "
        "zip archive but its end (the zip directory) is missing."
    ),
    "not_keras": (
        "cannot be read: it is a zip archive but not a Keras model (no config.json; it holds "
        "'readme.txt')."
    ),
}


def test_unreadable_checkpoints(runs):
    checkpoints = runs[1]["checkpoints"]
    for kind, problem in CHECKPOINT_PROBLEMS.items():
        message = one_sentence(runs, f"checkpoint_{kind}", 1)
        assert message == f"The model checkpoint '{checkpoints[kind]}' {problem}"
    message = one_sentence(runs, "checkpoint_one_output", 1)
    assert message.startswith(
        f"The model loaded from '{checkpoints['one_output']}', 'one_output' has 1 outputs; "
        "expected a functional model returning [logits, features]"
    )


def test_ctrl_c_during_a_backup_arrives_once_it_is_written():
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach the main thread only")
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    written = []
    try:
        with pytest.raises(KeyboardInterrupt):
            with interrupts_deferred():
                signal.raise_signal(signal.SIGINT)
                written.append("the whole backup")
        assert written == ["the whole backup"]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)


def test_interruption_names_the_stage_epoch_and_backup(tmp_path):
    (tmp_path / "training_metadata.json").write_text('{"epoch": 2, "batch": 0}')
    tracker = EpochTracker(initial_epoch=0)
    tracker.on_epoch_begin(2)
    with pytest.raises(StageInterrupted) as raised:
        with name_interruption("student", tracker, epochs=40, backup_dir=tmp_path):
            raise KeyboardInterrupt
    assert str(raised.value) == (
        "Interrupted in stage 'student' at epoch 3 of 40 (2 whole epochs backed up)"
    )
    assert isinstance(raised.value, KeyboardInterrupt)
