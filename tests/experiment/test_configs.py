"""Every shipped config loads, names real models and datasets, and keeps the paper's defaults."""

import functools
import importlib.util
import json
import re
from pathlib import Path

import pytest

from iekd_keras.data import DATASETS
from iekd_keras.experiment.recipes import base_config
from iekd_keras.models import get_model

# The KD-benchmark configs load an imported teacher and follow RepDistiller's recipe: their
# own tests are tests/experiment/test_kd_benchmark.py.
CONFIGS = sorted(
    path
    for path in (Path(__file__).parents[2] / "configs").glob("[!_]*.py")
    if not path.stem.startswith("kd_benchmark_")
)


def load(path, arg=None):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg), module.__doc__


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_is_complete_and_documented(path):
    config, doc = load(path)
    assert config.is_locked and set(config.to_dict()) == set(base_config().to_dict())
    assert config.data.name in DATASETS
    for role in ("teacher", "student"):
        assert get_model(config[role].model, 10) is not None
    assert f"--config=configs/{path.name}" in doc and "batch" in doc.lower()
    smoke, _ = load(path, "smoke")
    assert smoke.student.epochs <= 2 and smoke.teacher.epochs <= 2
    with pytest.raises(ValueError, match="Unknown (config variant|method) 'large'"):
        load(path, "large")


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_docstring_points_at_the_objective_instead_of_retyping_it(path):
    _, doc = load(path)
    assert "methods.objective(get_config(" in doc
    assert not re.search(r"D_\d\(|KL\(|\* CE|L_inh", doc), "a retyped formula"


def test_paper_defaults():
    config, _ = load(Path(__file__).parents[2] / "configs" / "cifar10_resnet56b_resnet20b.py")
    assert (config.distiller.lambda_inh, config.distiller.lambda_exp) == (50.0, 50.0)
    assert config.distiller.p == 1.0 and config.distiller.split_ratio == 0.5
    assert config.optimizer.milestones == (80, 120) and config.optimizer.l2_decay == 5e-4
    assert (config.teacher.epochs, config.autoencoder.epochs, config.batch_size) == (160, 30, 128)


def test_the_reverse_pair_weighs_the_ie_terms_1_in_its_ie_variants_only():
    path = Path(__file__).parents[2] / "configs" / "cifar10_resnet20b_resnet56b.py"
    for variant, weights in (("ie", 1.0), ("ie_kd", 1.0), ("kd", 0.0), ("student", 0.0)):
        config, _ = load(path, variant)
        assert (config.distiller.lambda_inh, config.distiller.lambda_exp) == (weights, weights)


INPUTS = {
    "digits": ((16, 16, 1), 10),
    "cifar10": ((32, 32, 3), 10),
    "cifar100": ((32, 32, 3), 100),
    "imagenet2012": ((224, 224, 3), 1000),
    "image_folder": ((32, 32, 3), 10),  # any folder; configs/image_folder.py's 32x32 images
}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_trains_one_eager_step_on_two_generated_images(path):
    import numpy as np

    from iekd_keras import CoupledWeightDecaySGD, Distiller, MutualDistiller
    from iekd_keras.experiment.config_checks import validate_config
    from iekd_keras.experiment.methods import build_distillation_losses
    from iekd_keras.layers import FactorAutoencoder
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


# What each config must equal, per docs/config_audit.md: the released yaml it follows, the
# networks in order (teacher, student; or DML peer 1, peer 2 with peer 1 updated first) with
# their shortcut ("A": parameter-free, "B": 1x1-conv projection, None: not a CIFAR ResNet), the
# KD variant's (T, alpha), and which teacher the student learns from ((select, from epoch);
# None for DML, which has no teacher).
RELEASED_KD_CIFAR10 = (20.0, 0.95)  # config/kd/cifar10/resnet56-20.yaml
RELEASED_KD_CIFAR100 = (4.0, 0.9)  # config/kd/cifar100/resnet110-32B.yaml
BEST_FROM_20 = ("best", 20)
AUDIT = {
    "cifar10_resnet56b_resnet20b": (
        "config/ft/cifar10/resnet56-20.yaml",
        (("resnet56b", "B"), ("resnet20b", "B")),
        RELEASED_KD_CIFAR10,
        BEST_FROM_20,
    ),
    "cifar10_resnet20b_resnet56b": (
        "config/ie_kd.yaml",
        (("resnet20b", "B"), ("resnet56b", "B")),
        RELEASED_KD_CIFAR10,
        BEST_FROM_20,
    ),
    "cifar100_resnet56b_resnet20b": (
        "config/ft/cifar100/resnet56-20.yaml",
        (("resnet56b", "B"), ("resnet20b", "B")),
        RELEASED_KD_CIFAR100,
        BEST_FROM_20,
    ),
    "cifar100_resnet110_resnet20b": (
        "config/ft/cifar100/resnet110-20.yaml",
        (("resnet110", "A"), ("resnet20b", "B")),
        RELEASED_KD_CIFAR100,
        BEST_FROM_20,
    ),
    "cifar100_resnet110_resnet32b": (
        "config/kd/cifar100/resnet110-32B.yaml",
        (("resnet110", "A"), ("resnet32b", "B")),
        RELEASED_KD_CIFAR100,
        BEST_FROM_20,
    ),
    "cifar100_wrn28_10_resnet32b": (
        "config/ft/cifar100/WRN28_10-resnet32.yaml",
        (("wrn_28_10", None), ("resnet32b", "B")),
        RELEASED_KD_CIFAR100,
        BEST_FROM_20,
    ),
    "cifar100_mobilenet_resnet32b": (
        "config/ft/cifar100/mobilenet-resnet32B.yaml",
        (("mobilenet", None), ("resnet32b", "B")),
        RELEASED_KD_CIFAR100,
        BEST_FROM_20,
    ),
    "cifar100_dml_resnet32b_mobilenet": (
        "config/DML/cifar100/mobilenet-resnet32.yaml",
        (("resnet32b", "B"), ("mobilenet", None)),
        None,
        None,
    ),
    "cifar100_dml_resnet32_resnet32": (
        "config/DML/cifar100/resnet32.yaml",
        (("resnet32", "A"), ("resnet32", "A")),
        None,
        None,
    ),
    "cifar100_dml_resnet56b_resnet32b": (
        "config/DML/cifar100/resnet56-20.yaml",
        (("resnet56b", "B"), ("resnet32b", "B")),
        None,
        None,
    ),
    "imagenet_resnet34_resnet18": (
        None,
        (("resnet34", None), ("resnet18", None)),
        None,
        BEST_FROM_20,
    ),
    "quickstart": (None, (("resnet20", "A"), ("resnet8", "A")), None, ("last", 20)),
    "quickstart_compare": (None, (("resnet20", "A"), ("resnet8", "A")), (4.0, 0.9), ("last", 20)),
    "quickstart_dml": (None, (("resnet8", "A"), ("resnet8", "A")), None, None),
    "digits_replication": (None, (("resnet20", "A"), ("resnet8", "A")), (4.0, 0.9), ("last", 20)),
    # The user's classifier is the teacher; teacher.model is trained only without a checkpoint.
    "image_folder": (None, (("resnet56b", "B"), ("resnet20", "A")), (4.0, 0.9), ("best", 20)),
}
# IE-DML runs the DML pairs with the IE terms (the released code has no IE-DML).
for _pair in ("resnet32b_mobilenet", "resnet32_resnet32", "resnet56b_resnet32b"):
    AUDIT[f"cifar100_iedml_{_pair}"] = AUDIT[f"cifar100_dml_{_pair}"]


# The initialisation each network family takes from its reference (docs/config_audit.md):
# (mode of every Conv2D's Kaiming normal, classifier kernel initialiser, classifier bias one).
INIT = {
    # released model/resnet.py: Kaiming fan_in on convs and the linear weight, default bias
    "cifar_resnet": ("fan_in", "kaiming_normal(fan_in)", "RandomUniform"),
    # released model/wide_resnet.py: fan_out convs, nn.Linear's default weight, zero bias
    "wide_resnet": ("fan_out", "pytorch_default", "Zeros"),
    # released model/mobilenet.py reset_parameters: fan_out convs, N(0, 0.01) weight, zero bias
    "cifar_mobilenet": ("fan_out", "RandomNormal", "Zeros"),
    # torchvision resnet: fan_out convs, nn.Linear's default weight and bias
    "imagenet_resnet": ("fan_out", "pytorch_default", "RandomUniform"),
}


def family_of(name):
    if name == "mobilenet":
        return "cifar_mobilenet"
    if name.startswith("wrn_"):
        return "wide_resnet"
    return "imagenet_resnet" if name in ("resnet18", "resnet34") else "cifar_resnet"


@functools.cache
def built(name):
    return get_model(name, num_classes=10, input_shape=(64, 64, 3))


def shortcut_of(name):
    """The shortcut of the built network: B with 1x1-conv projections, else A."""
    return "B" if any("shortcut" in layer.name for layer in built(name).layers) else "A"


def init_of(name):
    """(conv fan mode, classifier kernel and bias initialisers) of the built network."""
    import keras

    model = built(name)
    modes = {
        layer.kernel_initializer.get_config()["mode"]
        for layer in model.layers
        if type(layer) is keras.layers.Conv2D
    }
    assert len(modes) == 1, (name, modes)
    logits = model.get_layer("logits")
    kernel, bias = logits.kernel_initializer, logits.bias_initializer
    return (modes.pop(), initializer_name(kernel), type(bias).__name__)


def initializer_name(initializer):
    """Kaiming normal and PyTorch's default U(+-1/sqrt(fan_in)) by name; others by class."""
    config = initializer.get_config()
    if config.get("distribution") == "untruncated_normal" and config["scale"] == 2.0:
        return f"kaiming_normal({config['mode']})"
    uniform = (config.get("distribution"), config.get("mode")) == ("uniform", "fan_in")
    if uniform and abs(config["scale"] - 1 / 3) < 1e-12:
        return "pytorch_default"
    return type(initializer).__name__


def networks(config):
    if config.method == "dml":
        return (config.mutual.peer1, config.mutual.peer2)
    return (config.teacher.model, config.student.model)


def test_the_audit_table_covers_every_config():
    assert set(AUDIT) == {path.stem for path in CONFIGS}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_equals_its_audit_row(path):
    yaml, expected_networks, kd, teacher_choice = AUDIT[path.stem]
    config, doc = load(path)
    if yaml:
        assert f"`{yaml}`" in doc, f"the docstring names {yaml}"
    smoke, _ = load(path, "smoke")
    for variant in (config, smoke):
        assert networks(variant) == tuple(name for name, _ in expected_networks)
    for name, shortcut in expected_networks:
        if shortcut is not None:
            assert shortcut_of(name) == shortcut, name
        assert init_of(name) == INIT[family_of(name)], name
    if kd is not None:
        kd_config, _ = load(path, "kd")
        (term,) = kd_config.distillation_losses
        temperature, alpha = kd
        assert term == {"type": "kd", "kwargs": {"temperature": temperature, "alpha": alpha}}
        assert kd_config.distiller.student_loss_weight == pytest.approx(1 - alpha, abs=1e-12)
        assert f"T = {temperature:g}" in doc
    if teacher_choice is not None:
        assert (config.teacher.select, config.teacher.select_from_epoch) == teacher_choice
        assert smoke.teacher.select_from_epoch == 1  # a 2-epoch teacher still has a best epoch
    if config.method == "dml" and yaml:  # the released DML recipe
        assert config.mutual.kl_weight == 1.0 and config.mutual.temperature == 1.0
        assert (config.batch_size, config.mutual.epochs) == (64, 200)
        assert config.optimizer.milestones == (60, 120, 180)
        lambdas = (50.0, 50.0) if "iedml" in path.stem else (0.0, 0.0)
        assert (config.mutual.lambda_inh, config.mutual.lambda_exp) == lambdas


def test_the_shortcut_check_tells_a_from_b():
    assert (shortcut_of("resnet20"), shortcut_of("resnet20b")) == ("A", "B")


def test_cifar_ie_kd_configs_keep_the_released_recipe():
    for path in CONFIGS:
        config, _ = load(path)
        if config.method != "ie_kd" or not config.data.name.startswith("cifar"):
            continue
        epochs = (config.teacher.epochs, config.autoencoder.epochs, config.student.epochs)
        assert epochs == (160, 30, 160), path.stem
        assert (config.batch_size, config.optimizer.milestones) == (128, (80, 120)), path.stem
        assert config.optimizer.learning_rate == config.autoencoder.learning_rate == 0.1
        assert config.optimizer.l2_decay == 5e-4 and config.optimizer.nesterov, path.stem
        assert config.autoencoder.factor_channels == 32 and config.distiller.split_mode == "natural"


def finished_teacher_stage(workdir, accuracies):
    """A teacher stage on disk as a run leaves it, with different weights in best and last."""
    import keras

    stage = workdir / "teacher"
    stage.mkdir(parents=True)
    for seed, name in ((1, "best.keras"), (2, "last.keras")):
        keras.utils.set_random_seed(seed)
        get_model("resnet8", num_classes=10, input_shape=(8, 8, 1)).save(stage / name)
    rows = [f"{epoch},{accuracy}" for epoch, accuracy in enumerate(accuracies)]
    (stage / "log.csv").write_text("\n".join(["epoch,val_accuracy", *rows]) + "\n")
    (stage / "summary.json").write_text(json.dumps({"epochs": len(accuracies)}))
    return stage


def teacher_config(select, select_from_epoch, epochs=4):
    config = base_config()
    config.teacher.model = "resnet8"
    config.teacher.epochs = epochs
    config.teacher.select = select
    config.teacher.select_from_epoch = select_from_epoch
    config.optimizer.milestones = (2,)
    config.student.epochs = config.mutual.epochs = epochs
    return config


def test_the_student_learns_from_the_selected_teacher_checkpoint(tmp_path):
    import keras
    import numpy as np

    from iekd_keras.experiment.train import _teacher_stage

    # Epoch 2 is the first of the two best epochs: the one the released code keeps.
    stage = finished_teacher_stage(tmp_path, accuracies=(0.5, 0.9, 0.7, 0.9))
    for select, file, epoch in (("best", "best.keras", 2), ("last", "last.keras", 4)):
        teacher, summary = _teacher_stage(teacher_config(select, 2), tmp_path, data=None)
        assert summary["distilled_from"] == {
            "select": select,
            "file": file,
            "epoch": epoch,
            "test_accuracy": 0.9,
        }
        saved = keras.saving.load_model(stage / file, compile=False)
        for got, want in zip(teacher.get_weights(), saved.get_weights(), strict=True):
            np.testing.assert_array_equal(got, want)
    best, _ = _teacher_stage(teacher_config("best", 1), tmp_path, data=None)
    last, _ = _teacher_stage(teacher_config("last", 1), tmp_path, data=None)
    assert not np.array_equal(best.get_weights()[0], last.get_weights()[0])


def test_a_best_teacher_epoch_before_select_from_epoch_is_refused(tmp_path):
    from iekd_keras.experiment.train import _teacher_stage

    finished_teacher_stage(tmp_path, accuracies=(0.5, 0.9, 0.7, 0.8))
    with pytest.raises(ValueError, match=r"came at epoch 2, before .*select_from_epoch=3"):
        _teacher_stage(teacher_config("best", 3), tmp_path, data=None)


def test_teacher_select_is_validated():
    from iekd_keras.experiment.config_checks import ConfigError, validate_config

    config = teacher_config("first", 1)
    with pytest.raises(ConfigError, match=r"config.teacher.select='first' .*\['best', 'last'\]"):
        validate_config(config)
    config = teacher_config("best", 0)
    with pytest.raises(ConfigError, match=r"config.teacher.select_from_epoch=0 .*> 0"):
        validate_config(config)
    # Checked with the config, before any stage trains: no epoch of a 4-epoch teacher is >= 5.
    with pytest.raises(ConfigError, match=r"select_from_epoch=5 comes after .*epochs=4"):
        validate_config(teacher_config("best", 5))
    validate_config(teacher_config("last", 5))  # the rule only binds a "best" teacher
