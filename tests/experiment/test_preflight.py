"""Fail fast: check_run refuses a run that cannot complete before any stage trains or writes."""

import dataclasses
import importlib.util
import json
import random
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from configs import quickstart
from iekd_keras.experiment.config_checks import ConfigError
from iekd_keras.experiment.preflight import check_run
from iekd_keras.experiment.stages import autoencoder_trainer
from iekd_keras.models import get_model

pytestmark = pytest.mark.backend_agnostic

# The KD-benchmark configs load an imported teacher and follow RepDistiller's recipe: their
# own tests are tests/experiment/test_kd_benchmark.py. configs/image_folder.py needs the
# user's images and classifier: tests/experiment/test_image_folder_run.py checks its runs.
CONFIGS = sorted(
    path
    for path in (Path(__file__).parents[2] / "configs").glob("[!_]*.py")
    if not path.stem.startswith("kd_benchmark_") and path.stem != "image_folder"
)


@dataclasses.dataclass
class Shapes:
    """What check_run reads of a dataset: shapes and sizes, no images."""

    name: str = "digits"
    input_shape: tuple = (8, 8, 1)
    num_classes: int = 10
    num_train_examples: int = 1438


class ImagesWithoutIndices(Shapes):
    """A dataset whose training batches cannot carry the examples' indices."""

    def train_dataset(self, batch_size, seed, epochs, start_epoch=0, augmentation=()):
        raise AssertionError("check_run reads the signature only")


DIGITS = Shapes()


def tiny_config(**changes):
    """The quickstart smoke run on 8x8 digits, ResNet-8 teacher and student."""
    config = quickstart.get_config("smoke")
    config.data.image_size = 8
    config.teacher.model = config.student.model = "resnet8"
    config.autoencoder.factor_channels = 8
    for key, value in changes.items():
        group, _, name = key.rpartition("__")
        (config[group] if group else config)[name] = value
    return config


def refused(config, data=DIGITS, workdir=None, replicas=1):
    with pytest.raises(ConfigError) as error:
        check_run(config, data, workdir, replicas)
    return str(error.value)


def save_model(model, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return str(path)


# 1. The found case, through train_and_evaluate.
@pytest.mark.tensorflow_only
def test_quickstart_with_a_resnet18_student_is_refused_before_the_teacher_trains(tmp_path):
    from iekd_keras.data import load_digits
    from iekd_keras.experiment.train import train_and_evaluate

    config = quickstart.get_config()
    config.student.model = "resnet18"
    data = load_digits(16)
    started = time.perf_counter()
    with pytest.raises(ConfigError) as error:
        train_and_evaluate(config, tmp_path / "run", data=data)
    elapsed = time.perf_counter() - started
    assert elapsed < 30
    assert (
        "config.student.model='resnet18' gives 1x1 features but config.teacher.model='resnet20' "
        "gives 4x4 on the dataset's 16x16 images; the IE terms" in str(error.value)
    )
    assert not (tmp_path / "run" / "teacher").exists()
    # Nothing recorded either: the corrected config then starts without --allow_config_change.
    assert not (tmp_path / "run" / "config.json").exists()


# 2. One test per pairing.
def test_teacher_checkpoint_with_other_classes(tmp_path):
    path = save_model(get_model("resnet8", 5, (8, 8, 1)), tmp_path / "teacher.keras")
    message = refused(tiny_config(teacher__checkpoint=path))
    assert f"config.teacher.checkpoint='{path}' predicts 5 classes" in message
    assert "the dataset 'digits' has 10" in message


def test_teacher_checkpoint_for_other_images(tmp_path):
    path = save_model(get_model("resnet8", 10, (16, 16, 1)), tmp_path / "teacher.keras")
    message = refused(tiny_config(teacher__checkpoint=path))
    assert "takes images of shape (16, 16, 1) but the dataset 'digits' gives (8, 8, 1)" in message


def test_spatial_sizes_of_teacher_and_student():
    message = refused(tiny_config(student__model="resnet18"))
    assert message.startswith(
        "config.student.model='resnet18' gives 1x1 features but config.teacher.model='resnet8' "
        "gives 2x2 on the dataset's 8x8 images"
    )
    assert "lambda_inh=50.0, lambda_exp=50.0) need equal spatial sizes" in message
    # Without the IE terms the sizes need not match.
    check_run(
        tiny_config(
            student__model="resnet18", distiller__lambda_inh=0.0, distiller__lambda_exp=0.0
        ),
        DIGITS,
    )


def test_channel_split_of_the_student():
    message = refused(tiny_config(distiller__split_ratio=0.01))
    assert (
        "config.distiller.split_ratio=0.01 splits the 64 feature channels of "
        "config.student.model='resnet8' into 0 inheritance and 64 exploration channels"
    ) in message


def test_taps_name_layers_of_the_models():
    message = refused(tiny_config(student__taps=("stage9",)))
    assert "config.student.taps=('stage9',) do not fit config.student.model='resnet8'" in message
    assert "'stage9'" in message
    # AT compares stage maps: without taps the models do not expose them.
    message = refused(tiny_config(distillation_losses=({"type": "at", "kwargs": {}},)))
    assert "config.distillation_losses[0] (type 'at') does not fit" in message
    assert "no output named 'stage1'" in message


def test_factor_size_of_factor_transfer():
    losses = ({"type": "ft", "kwargs": {"factor_channels": 16}},)
    message = refused(tiny_config(distillation_losses=losses))
    assert "config.distillation_losses[0] (type 'ft') does not fit" in message
    assert "config.autoencoder.factor_channels=8" in message
    assert "factor_channels=16 but the teacher factor has 8 channels" in message


def test_crd_negatives_against_the_dataset_size():
    message = refused(tiny_config(distillation_losses=({"type": "crd", "kwargs": {}},)))
    assert (
        "config.distillation_losses[0] (type 'crd') contrasts each example with "
        "num_negatives=16384 others but the dataset 'digits' has only 1438 training examples"
    ) in message
    crd = ({"type": "crd", "kwargs": {"num_negatives": 100}},)
    check_run(tiny_config(distillation_losses=crd), DIGITS)  # the forward uses indices
    message = refused(tiny_config(distillation_losses=crd), ImagesWithoutIndices())
    assert "needs each training example's dataset index" in message


def test_batches_against_replicas():
    message = refused(tiny_config(), replicas=3)
    assert "config.batch_size=64 is not divisible by the 3 replicas" in message
    message = refused(tiny_config(batch_size=60, eval_batch_size=100), replicas=3)
    assert "config.eval_batch_size=100 is not divisible by the 3 replicas" in message


def test_milestones_against_epochs():
    message = refused(tiny_config(optimizer__milestones=(8, 20)))
    assert "milestones=(8, 20) reach past config.teacher.epochs=2" in message


def test_unreadable_teacher_checkpoint(tmp_path):
    path = tmp_path / "teacher.keras"
    path.write_bytes(b"not a Keras file")
    message = refused(tiny_config(teacher__checkpoint=str(path)))
    assert f"config.teacher.checkpoint='{path}' is not a usable teacher" in message
    assert "cannot be read" in message


def test_teacher_checkpoint_with_one_output(tmp_path):
    inputs = keras.Input((8, 8, 1))
    one_output = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(inputs)))
    path = save_model(one_output, tmp_path / "teacher.keras")
    message = refused(tiny_config(teacher__checkpoint=path))
    assert f"config.teacher.checkpoint='{path}' is not a usable teacher" in message
    # A one-output checkpoint is taken as a plain classifier, which needs a feature map.
    assert "has no layer with a 4-D output (batch, height, width, channels)" in message


def test_mutual_peers_spatial_sizes():
    from configs import quickstart_dml

    config = quickstart_dml.get_config("ie,smoke")
    config.data.image_size = 8
    config.mutual.peer2 = "resnet18"
    message = refused(config)
    assert message.startswith(
        "config.mutual.peer2='resnet18' gives 1x1 features but config.mutual.peer1="
    )


# 3. Resuming: finished stages are loaded, not rebuilt; nothing left to check passes.
def write_finished(workdir, stage, model=None):
    if model is not None:
        save_model(model, workdir / stage / "last.keras")
    (workdir / stage).mkdir(parents=True, exist_ok=True)
    (workdir / stage / "summary.json").write_text(json.dumps({"epochs": 1}))


def test_resume_reads_the_finished_stages(tmp_path):
    teacher = get_model("resnet8", 10, (8, 8, 1))
    write_finished(tmp_path, "teacher", teacher)
    write_finished(
        tmp_path, "autoencoder", autoencoder_trainer(tiny_config(), teacher).checkpoint_model
    )
    check_run(tiny_config(), DIGITS, tmp_path)
    # The finished auto-encoder is this teacher's: a student of other features is refused.
    message = refused(tiny_config(student__model="resnet18"), workdir=tmp_path)
    assert "config.student.model='resnet18' gives 1x1 features" in message
    # The finished teacher is read from its file.
    write_finished(tmp_path, "teacher", get_model("resnet8", 5, (8, 8, 1)))
    message = refused(tiny_config(), workdir=tmp_path)
    assert "The finished teacher stage's" in message and "predicts 5 classes" in message


def test_a_finished_run_has_nothing_left_to_check(tmp_path):
    for stage in ("teacher", "autoencoder", "student", "baseline"):
        write_finished(tmp_path, stage)
    check_run(tiny_config(student__model="resnet18"), DIGITS, tmp_path)


# 4. No trace on the run; every shipped config passes.
def test_check_leaves_names_and_random_states_as_they_were():
    def next_objects():
        layer = keras.layers.Dense(3)
        layer.build((None, 4))
        return layer.name, layer.get_weights()[0], random.random(), np.random.rand()

    keras.backend.clear_session()
    keras.utils.set_random_seed(7)
    expected = next_objects()
    keras.backend.clear_session()
    keras.utils.set_random_seed(7)
    check_run(tiny_config(), DIGITS)
    got = next_objects()
    assert got[0] == expected[0] == "dense"
    np.testing.assert_array_equal(got[1], expected[1])
    assert got[2:] == expected[2:]


INPUTS = {
    "digits": (None, 10, 1438),
    "cifar10": ((32, 32, 3), 10, 50000),
    "cifar100": ((32, 32, 3), 100, 50000),
    "imagenet2012": (None, 1000, 1281167),
}


def load_config(path, arg):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


def mock_data(config):
    shape, classes, examples = INPUTS[config.data.name]
    if shape is None:
        channels = 1 if config.data.name == "digits" else 3
        shape = (config.data.image_size, config.data.image_size, channels)
    return Shapes(config.data.name, shape, classes, examples)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_shipped_config_passes(path):
    config = load_config(path, "smoke")
    check_run(config, mock_data(config))
