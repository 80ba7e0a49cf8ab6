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
    with pytest.raises(ValueError, match="Unknown (config variant|method) 'large'"):
        load(path, "large")


def test_paper_defaults():
    config, _ = load(Path(__file__).parents[1] / "configs" / "cifar10_resnet56b_resnet20b.py")
    assert (config.distiller.lambda_inh, config.distiller.lambda_exp) == (50.0, 50.0)
    assert config.distiller.p == 1.0 and config.distiller.split_ratio == 0.5
    assert config.optimizer.milestones == (80, 120) and config.optimizer.l2_decay == 5e-4
    assert (config.teacher.epochs, config.autoencoder.epochs, config.batch_size) == (160, 30, 128)


INPUTS = {
    "digits": ((16, 16, 1), 10),
    "cifar10": ((32, 32, 3), 10),
    "cifar100": ((32, 32, 3), 100),
    "imagenet2012": ((224, 224, 3), 1000),
}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_trains_one_eager_step_on_two_generated_images(path):
    import numpy as np

    from iekd_keras import CoupledWeightDecaySGD, Distiller, MutualDistiller
    from iekd_keras.config_validation import validate_config
    from iekd_keras.layers import FactorAutoencoder
    from iekd_keras.methods import build_distillation_losses
    from iekd_keras.models import with_taps

    config, _ = load(path)
    validate_config(config)
    shape, classes = INPUTS[config.data.name]
    if config.data.name == "digits":
        shape = (config.data.image_size, config.data.image_size, 1)
    images = np.random.default_rng(0).normal(size=(2, *shape)).astype("float32")
    labels = np.array([0, 1], "int32")
    if config.method == "dml":
        model = MutualDistiller(
            get_model(config.mutual.peer1, classes, shape),
            get_model(config.mutual.peer2, classes, shape),
            lambda_inh=config.mutual.lambda_inh,
            lambda_exp=config.mutual.lambda_exp,
        )
    else:
        teacher = get_model(config.teacher.model, classes, shape)
        student = get_model(config.student.model, classes, shape)
        if config.teacher.taps:
            teacher = with_taps(teacher, list(config.teacher.taps))
            student = with_taps(student, list(config.student.taps))
        autoencoder = FactorAutoencoder(config.autoencoder.factor_channels)
        autoencoder.build(teacher.outputs[1].shape)
        model = Distiller(
            teacher,
            student,
            autoencoder.encoder,
            distillation_losses=build_distillation_losses(config.distillation_losses, 2),
            **config.distiller.to_dict(),
        )
    model.compile(optimizer=CoupledWeightDecaySGD(0.01), run_eagerly=True)
    logs = model.train_on_batch(images, labels, return_dict=True)
    assert np.isfinite(logs["loss"])
