"""load_two_output_model: a checkpoint that cannot be read is named, with what is wrong."""

import pytest

from iekd_keras.experiment.evaluation import load_two_output_model
from tests.distillers.tiny_models import tiny_backbone

pytestmark = pytest.mark.backend_agnostic


def test_corrupted_checkpoint_is_detected(tmp_path):
    path = tmp_path / "teacher.keras"
    tiny_backbone().save(path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(
        ValueError,
        match=r"checkpoint .*teacher.keras' cannot be read: it is "
        "truncated, corrupted",
    ):
        load_two_output_model(path, "teacher")
