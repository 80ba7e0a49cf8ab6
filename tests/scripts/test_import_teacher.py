"""scripts/import_teacher.py end to end: a PyTorch checkpoint becomes a `.keras` teacher that the
experiments load in safe mode and that computes what the PyTorch network computes; each mistake
is one sentence with exit code 2 and leaves nothing behind.

The runs are subprocesses, started together (each one that imports TensorFlow takes ~5-10 s);
mistakes in the paths and flags are found before TensorFlow loads. The library's refusals
(unknown zoo or arch, unreadable checkpoints) are tested in tests/models/test_pytorch_import.py;
here one of them, and torch missing, show the way the script reports them.
"""

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from iekd_keras.experiment.evaluation import load_two_output_model  # noqa: E402
from tests.models import torch_iekd_models  # noqa: E402
from tests.scripts.test_script_errors import script_lines  # noqa: E402

ROOT = Path(__file__).parents[2]
SCRIPT = ROOT / "scripts" / "import_teacher.py"


def run(*args, python_path=None):
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    environment.pop("IEKD_DEBUG", None)
    if python_path:
        environment["PYTHONPATH"] = os.pathsep.join(
            [str(python_path), *filter(None, [environment.get("PYTHONPATH")])]
        )
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=240,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every run of the module, started at once: {case: (result, directory)}."""
    directory = tmp_path_factory.mktemp("import_teacher")
    network = torch_iekd_models.randomize(torch_iekd_models.build("resnet8", num_classes=10))
    checkpoint = directory / "resnet8.pth"
    torch.save({"epoch": 240, "model": network.state_dict()}, checkpoint)
    fake_torch = directory / "without_torch" / "torch"
    fake_torch.mkdir(parents=True)
    (fake_torch / "__init__.py").write_text("raise ModuleNotFoundError('no torch here')\n")

    def output(case):
        folder = directory / case
        folder.mkdir()
        return f"--output={folder / 'teacher.keras'}"

    common = [f"--checkpoint={checkpoint}", "--zoo=iekd", "--arch=resnet8", "--num_classes=10"]
    cases = {
        "imported": (common + [output("imported")], None),
        "missing checkpoint": (
            [f"--checkpoint={directory / 'none.pth'}", "--arch=resnet8", output("missing")],
            None,
        ),
        "missing output directory": (
            common + [f"--output={directory / 'no_such_dir' / 'teacher.keras'}"],
            None,
        ),
        "not a .keras output": (common + [f"--output={directory / 'teacher.h5'}"], None),
        "bad input shape": (common + ["--input_shape=32,32", output("shape")], None),
        "mis-shaped": (
            [f"--checkpoint={checkpoint}", "--zoo=iekd", "--arch=resnet8", output("shaped")],
            None,
        ),
        "no torch": (common + [output("no_torch")], directory / "without_torch"),
    }
    with ThreadPoolExecutor(len(cases)) as pool:
        futures = {
            case: pool.submit(run, *args, python_path=path) for case, (args, path) in cases.items()
        }
        results = {case: future.result() for case, future in futures.items()}
    return {"network": network, "directory": directory, **results}


def test_the_written_teacher_loads_in_safe_mode_and_equals_the_pytorch_network(runs):
    result = runs["imported"]
    assert result.returncode == 0, result.stderr
    path = runs["directory"] / "imported" / "teacher.keras"
    assert f"{path}: resnet8 of the iekd zoo from" in result.stdout
    assert sorted(os.listdir(path.parent)) == ["teacher.keras"]  # no temporary file left

    teacher = load_two_output_model(path, "teacher")  # what --config.teacher.checkpoint does
    images = np.random.default_rng(3).normal(size=(2, 32, 32, 3)).astype("float32")
    outputs = [np.asarray(output) for output in teacher(images, training=False)]
    expected = torch_iekd_models.torch_outputs(runs["network"], images)
    for actual, wanted in zip(outputs, expected, strict=True):
        assert torch_iekd_models.relative_error(actual, wanted) < 1e-4


# What each mistake of the `runs` fixture prints after "error: ".
SENTENCES = {
    "missing checkpoint": r"The PyTorch checkpoint '.*none\.pth' does not exist\.",
    "missing output directory": (
        r"The directory '.*no_such_dir' of --output does not exist; create it first\."
    ),
    "not a .keras output": r"--output must name a \.keras file; got '.*teacher\.h5'\.",
    "bad input shape": r"--input_shape must be three positive integers .*; got '32,32'\.",
    "mis-shaped": (
        r"The PyTorch state does not fit the Keras model 'resnet8': mis-shaped tensors: "
        r"'linear\.bias' is \(10,\) where Keras weight 'logits/bias' \(100,\) needs \(100,\), "
        r"'linear\.weight' is \(10, 64\) where Keras weight 'logits/kernel' \(64, 100\) needs "
        r"\(100, 64\)\."
    ),
    "no torch": r"Reading PyTorch checkpoints needs torch: install the project's .*",
}


@pytest.mark.parametrize("case", list(SENTENCES))
def test_each_mistake_is_one_sentence_with_exit_code_2_and_writes_nothing(runs, case):
    result = runs[case]
    lines = script_lines(result.stderr)
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("error: ")
    assert re.fullmatch(SENTENCES[case], lines[0].removeprefix("error: ")), lines[0]
    written = [
        path.name
        for path in runs["directory"].rglob("*")
        if path.is_file() and path.suffix == ".keras" and "imported" not in path.parts
    ]
    assert written == []
