"""prepare_workdir: a workdir records its config, refuses another one and says when it cannot
be written."""

import json

import pytest

from configs import quickstart
from iekd_keras.experiment.records import prepare_workdir

pytestmark = pytest.mark.backend_agnostic


def test_workdir_of_another_config_is_refused(tmp_path):
    prepare_workdir(tmp_path, quickstart.get_config())
    changed = quickstart.get_config()
    changed.distiller.lambda_inh = 25.0
    changed.student.epochs = 10
    with pytest.raises(
        ValueError,
        match=r"different config \(recorded -> now: distiller.lambda_inh: 50.0 -> 25.0; "
        r"student.epochs: 15 -> 10\); use another --workdir, or pass --allow_config_change",
    ):
        prepare_workdir(tmp_path, changed)
    prepare_workdir(tmp_path, changed, allow_config_change=True)
    recorded = json.loads((tmp_path / "config.json").read_text())
    assert recorded["distiller"]["lambda_inh"] == 25.0


def test_unwritable_workdir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(PermissionError, match=r"The workdir '.*file/run' cannot be written"):
        prepare_workdir(blocker / "run", quickstart.get_config())
