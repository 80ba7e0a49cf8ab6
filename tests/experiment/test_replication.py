"""The digits replication pairs its methods by seed: for one seed, every method's student starts
from the same weights and sees the same batches, and the report pairs them with the student
alone."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from iekd_keras.data import load_digits
from iekd_keras.experiment import stages
from iekd_keras.experiment.report import flat_config, stage_recipe, trains_alone
from iekd_keras.experiment.train import _train_dataset
from iekd_keras.layers import FactorAutoencoder
from iekd_keras.models import get_model

PROTOCOL_PATH = Path(__file__).parents[2] / "configs" / "digits_replication.py"
# The keys a method sets (methods.apply_method): nothing else may differ between two variants.
METHOD_KEYS = ("distillation_losses", "distiller.", "teacher.taps", "student.taps")


@pytest.fixture(scope="module")
def protocol():
    spec = importlib.util.spec_from_file_location("digits_replication", PROTOCOL_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def data(protocol):
    return load_digits(protocol.get_config().data.image_size)


def test_the_protocol_is_fixed(protocol):
    config = protocol.get_config("student")
    assert protocol.METHODS == ("student", "kd", "ie_kd", "at", "ie_at", "ft", "ie_ft")
    assert len(protocol.SEEDS) >= 5 and protocol.TEACHER_SEED not in protocol.SEEDS
    assert (config.data.name, config.data.image_size, config.batch_size) == ("digits", 8, 64)
    assert (config.teacher.model, config.student.model) == ("resnet20", "resnet8")
    assert (config.student.epochs, config.optimizer.milestones) == (3, (2,))
    assert not config.baseline and trains_alone(config.to_dict())
    teacher = protocol.get_config("teacher")
    assert (teacher.teacher.epochs, teacher.optimizer.milestones) == (15, (8, 12))
    assert teacher.teacher.select == "last" and not teacher.teacher.checkpoint


def test_methods_differ_only_in_their_terms(protocol):
    """Every variant is the student alone's config plus a method's keys, so the report pairs
    each with the student alone of its seed."""
    alone = protocol.get_config("student").to_dict()
    for method in protocol.METHODS[1:]:
        config = protocol.get_config(method).to_dict()
        differing = {
            key for key, value in flat_config(config).items() if flat_config(alone)[key] != value
        }
        assert differing, method
        assert all(key.startswith(METHOD_KEYS) for key in differing), (method, differing)
        assert stage_recipe(config, "baseline") == stage_recipe(alone, "baseline")


def student_trainer(config, data):
    """The trainer the run's `student` stage builds, on an untrained teacher."""
    (stage,) = (stage for stage in stages.plan(config) if stage.name == "student")
    teacher = get_model(config.teacher.model, data.num_classes, data.input_shape)
    outputs = {
        "teacher": teacher,
        "autoencoder": FactorAutoencoder(config.autoencoder.factor_channels),
    }
    return stage.build(config, data, outputs)


def start_of(config, data):
    """The student's initial weights by layer, and its first two batches."""
    trainer = student_trainer(config, data)
    weights = {
        layer.name: [np.array(w) for w in layer.weights]
        for layer in trainer.checkpoint_model.layers
        if layer.weights
    }
    batches = _train_dataset(trainer, config, data, config.student.epochs, 0).take(2)
    return weights, [(np.array(images), np.array(labels)) for images, labels in batches]


def test_one_seed_gives_every_method_the_same_student_start_and_batches(protocol, data):
    starts = {}
    for method in ("student", "ie_at", "ft"):
        config = protocol.get_config(method)
        config.seed = 3
        starts[method] = start_of(config, data)
    other_seed = protocol.get_config("student")
    other_seed.seed = 4
    starts["seed 4"] = start_of(other_seed, data)

    weights, batches = starts["student"]
    assert len(weights) > 10 and len(batches) == 2
    for method in ("ie_at", "ft"):
        method_weights, method_batches = starts[method]
        assert method_weights.keys() == weights.keys()
        for name, arrays in weights.items():
            for array, method_array in zip(arrays, method_weights[name], strict=True):
                np.testing.assert_array_equal(method_array, array, err_msg=f"{method} {name}")
        for (images, labels), (method_images, method_labels) in zip(
            batches, method_batches, strict=True
        ):
            np.testing.assert_array_equal(method_images, images)
            np.testing.assert_array_equal(method_labels, labels)
    # Another seed: other weights and other batches (the equalities above are not trivial).
    seed_weights, seed_batches = starts["seed 4"]
    assert not np.array_equal(seed_weights["logits"][0], weights["logits"][0])
    assert not np.array_equal(seed_batches[0][1], batches[0][1])
