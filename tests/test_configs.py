"""Every shipped config loads, names real models and datasets, and keeps the paper's defaults."""

import importlib.util
from pathlib import Path

import pytest

from iekd_keras.data import DATASETS
from iekd_keras.models import get_model
from iekd_keras.recipes import base_config

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("[!_]*.py"))


def load(path, arg=None):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg), module.__doc__


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_is_complete_and_documented(path):
    config, doc = load(path)
    assert set(config.to_dict()) == set(base_config().to_dict())
    assert config.data.name in DATASETS
    for role in ("teacher", "student"):
        assert get_model(config[role].model, 10) is not None
    assert f"--config=configs/{path.name}" in doc and "batch" in doc.lower()
    smoke, _ = load(path, "smoke")
    assert smoke.student.epochs <= 2 and smoke.teacher.epochs <= 2
    with pytest.raises(ValueError, match="Unknown config variant 'large'"):
        load(path, "large")


def test_paper_defaults():
    config, _ = load(Path(__file__).parents[1] / "configs" / "cifar10_resnet56b_resnet20b.py")
    assert (config.distiller.lambda_inh, config.distiller.lambda_exp) == (50.0, 50.0)
    assert config.distiller.p == 1.0 and config.distiller.split_ratio == 0.5
    assert config.optimizer.milestones == (80, 120) and config.optimizer.l2_decay == 5e-4
    assert (config.teacher.epochs, config.autoencoder.epochs, config.batch_size) == (160, 30, 128)
