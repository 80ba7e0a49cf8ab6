"""The stage table: which stages a config runs, what each fits with, and run_stage's steps
(skip a finished stage, load, record), without training."""

import json

import keras
import ml_collections
import pytest

from configs import quickstart, quickstart_dml
from iekd_keras.experiment import stages, train
from iekd_keras.experiment.stages import Recipe, plan
from iekd_keras.models import get_model

pytestmark = pytest.mark.backend_agnostic


def names(config):
    return [stage.name for stage in plan(config)]


def test_the_plan_of_each_method():
    config = quickstart.get_config()
    assert names(config) == ["teacher", "autoencoder", "student", "baseline"]
    config.baseline = False
    assert names(config) == ["teacher", "autoencoder", "student"]
    config.teacher.checkpoint = "teacher.keras"
    (teacher, *_) = plan(config)
    assert teacher.name == "teacher" and teacher.build is None  # given: nothing to train
    assert names(quickstart_dml.get_config()) == ["mutual"]


def test_the_recipe_of_each_stage():
    config = quickstart.get_config()
    config.teacher.l2_decay = 1e-4
    recipes = {stage.name: stage.recipe(config) for stage in plan(config)}
    assert recipes == {
        "teacher": Recipe(15, 0.1, (8, 12), 1e-4),
        "autoencoder": Recipe(5, 0.1, (), None),
        "student": Recipe(15, 0.1, (8, 12), None),
        "baseline": Recipe(15, 0.1, (8, 12), None),
    }
    config = quickstart_dml.get_config()
    config.mutual.epochs = 20
    (mutual,) = plan(config)
    assert mutual.recipe(config) == Recipe(20, 0.1, (8, 12), None)
    assert [c.suffix for c in mutual.checkpoints] == ["_peer1", "_peer2"]


def test_exactly_one_stage_serves_the_export():
    for config in (quickstart.get_config(), quickstart_dml.get_config()):
        assert len([stage for stage in plan(config) if stage.serves]) == 1
    config = quickstart_dml.get_config()
    config.mutual.export_peer = 2
    (mutual,) = plan(config)
    assert mutual.serves(config, ("peer 1", "peer 2")) == "peer 2"


def finished_stage(workdir, name, model_name="resnet8"):
    directory = workdir / name
    directory.mkdir(parents=True)
    get_model(model_name, num_classes=10, input_shape=(8, 8, 1)).save(directory / "last.keras")
    summary = {"epochs": 4, "best_test_accuracy": 0.75, "last_test_accuracy": 0.5}
    (directory / "summary.json").write_text(json.dumps(summary))


def test_a_finished_stage_is_loaded_and_recorded_not_fitted(tmp_path):
    config = quickstart.get_config()
    config.student.model = "resnet8"
    finished_stage(tmp_path, "baseline")
    baseline = next(stage for stage in plan(config) if stage.name == "baseline")

    def never(*args):
        raise AssertionError("a finished stage is not built")

    skipped = stages.Stage("baseline", baseline.runs, baseline.load, build=never)
    model, records = train.run_stage(skipped, config, tmp_path, data=None, outputs={})
    assert records == {
        "baseline": {
            "epochs": 4,
            "best_test_accuracy": 0.75,
            "last_test_accuracy": 0.5,
            "model": "resnet8",
            "trainable_parameters": 75_002,  # ResNet-8 on 8x8x1 digits, 10 classes
        }
    }
    assert train.trainable_parameters(model) == 75_002


class Interrupt(Exception):
    pass


def test_a_config_without_some_keys_takes_base_configs_defaults(monkeypatch, tmp_path, capsys):
    """deterministic (None), export (True) and data.image_size (32) left out: the run uses
    base_config()'s values, not other fallbacks (op determinism on for this CPU run, the
    export, 32x32 images), and says at its start what it chose for determinism."""
    tree = quickstart.get_config("smoke").to_dict()
    del tree["deterministic"], tree["export"], tree["data"]["image_size"]
    seen = {}

    def check_jit_compile(jit_compile, strategy, deterministic):
        seen["deterministic"] = deterministic

    def load_dataset(data_config):
        seen["image_size"] = data_config.image_size
        raise Interrupt  # what follows is the complete config's run

    monkeypatch.setattr(train, "check_jit_compile", check_jit_compile)
    monkeypatch.setattr(train, "load_dataset", load_dataset)
    with pytest.raises(Interrupt):
        train.train_and_evaluate(ml_collections.ConfigDict(tree), tmp_path)
    # The switch is TensorFlow's; JAX's CPU steps repeat exactly without one.
    on_tensorflow = keras.backend.backend() == "tensorflow"
    assert seen == {"deterministic": on_tensorflow, "image_size": 32}
    said = "on (config.deterministic=None on the CPU)" if on_tensorflow else "not a switch on jax"
    assert f"Op determinism: {said}" in capsys.readouterr().out
    # `export` left out: the end-to-end run of test_train_and_evaluate.py finds its export.
