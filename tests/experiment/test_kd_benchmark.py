"""The KD benchmark: RepDistiller's recipe and settings in every config and variant, and one
IE-KD training step of each of its eleven pairs, the teacher loaded from a `.keras` file."""

import functools
import importlib.util
import types
from pathlib import Path

import numpy as np
import pytest

from iekd_keras.experiment.kd_benchmark import (
    PUBLISHED_COLUMNS,
    PUBLISHED_TOP1,
    published_top1,
    repdistiller_cifar100,
)
from iekd_keras.experiment.methods import objective

CONFIGS = sorted((Path(__file__).parents[2] / "configs").glob("kd_benchmark_*.py"))
METHODS = ("student", "ie", "kd", "at", "fitnet", "ft", "crd")
VARIANTS = METHODS + tuple(f"ie_{method}" for method in METHODS[2:])
SMALL_STUDENTS = ("MobileNetV2", "ShuffleV1", "ShuffleV2")  # train_student.py: LR 0.01


def load(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pair_of(config):
    """(teacher, student) RepDistiller arch names of a benchmark config."""
    return tuple(config[role].model.split("/", 1)[1] for role in ("teacher", "student"))


def require_registered(*archs):
    from iekd_keras.models import available_models

    missing = [arch for arch in archs if f"repdistiller/{arch}" not in available_models()]
    if missing:
        pytest.skip(f"{missing} not yet in the model registry as repdistiller/<arch>")


@pytest.mark.backend_agnostic
def test_one_config_per_published_pair_with_its_commands_and_numbers():
    pairs = {}
    for path in CONFIGS:
        module = load(path)
        teacher, student = pair = pair_of(module.get_config())
        pairs[pair] = path
        assert path.name == f"kd_benchmark_{teacher.lower()}_{student.lower()}.py"
        doc = " ".join(module.__doc__.split())
        assert (
            f"python scripts/import_teacher.py --zoo=repdistiller --arch={teacher} "
            f"--checkpoint=save/models/{teacher}_vanilla/ckpt_epoch_240.pth --num_classes=100 "
            f"--output=teachers/repdistiller/{teacher}.keras"
        ) in doc
        assert f"python scripts/train.py --config=configs/{path.name}:kd" in doc
        assert "methods.objective(get_config(variant))" in doc
        top1 = published_top1(teacher, student)
        expected = (
            f"teacher {top1['teacher']:.2f}%, student {top1['student']:.2f}%, KD {top1['kd']:.2f}%"
        )
        assert expected in doc, path.name
    assert set(pairs) == set(PUBLISHED_TOP1) and len(CONFIGS) == 11


@pytest.mark.backend_agnostic
def test_the_published_numbers_are_the_readmes():
    # Spot checks against the README's tables, one per table and column.
    assert published_top1("resnet32x4", "resnet8x4") == dict(
        zip(PUBLISHED_COLUMNS, (79.42, 72.50, 73.33, 73.50, 73.44, 72.86, 75.51), strict=True)
    )
    assert published_top1("ResNet50", "MobileNetV2")["at"] == 58.58
    assert published_top1("wrn_40_2", "ShuffleV1")["crd"] == 76.05
    for teacher, student, *methods in PUBLISHED_TOP1.values():
        assert teacher > student and all(50 < value < 80 for value in (student, *methods))
    with pytest.raises(ValueError, match=r"no CIFAR-100 results for 'resnet110' -> 'vgg8'"):
        published_top1("resnet110", "vgg8")


@pytest.mark.backend_agnostic
def test_every_config_has_repdistillers_recipe():
    for path in CONFIGS:
        config = load(path).get_config()
        teacher, student = pair_of(config)
        assert config.data.name == "cifar100" and config.method == "ie_kd"
        assert config.teacher.checkpoint == f"teachers/repdistiller/{teacher}.keras"
        assert (config.student.epochs, config.batch_size) == (240, 64)
        optimizer = config.optimizer
        assert optimizer.milestones == (150, 180, 210) and optimizer.gamma == 0.1
        assert (optimizer.momentum, optimizer.nesterov, optimizer.l2_decay) == (0.9, False, 5e-4)
        assert optimizer.learning_rate == (0.01 if student in SMALL_STUDENTS else 0.05)
        assert optimizer.scale_reference_batch_size is None
        # The IE auto-encoder runs on the imported teacher with the library's settings.
        assert (config.autoencoder.epochs, config.autoencoder.learning_rate) == (30, 0.1)
        assert (config.distiller.lambda_inh, config.distiller.lambda_exp) == (50.0, 50.0)
        assert config.distillation_losses == () and not config.teacher.skip_sanity_check
        smoke = load(path).get_config("smoke")
        assert (smoke.student.epochs, smoke.autoencoder.epochs) == (2, 1)
        assert smoke.teacher.checkpoint == config.teacher.checkpoint
        assert smoke.optimizer.learning_rate == optimizer.learning_rate


def test_each_method_takes_repdistillers_settings():
    require_registered("vgg13", "MobileNetV2", "resnet32x4", "ShuffleV1")
    four_stages = tuple(f"stage{i}" for i in range(1, 5))

    def variant(method, teacher="vgg13", student="MobileNetV2"):
        return repdistiller_cifar100(teacher, student, method)

    kd = variant("kd")
    assert kd.distillation_losses == ({"type": "kd", "kwargs": {"temperature": 4.0, "alpha": 0.9}},)
    assert objective(kd) == "0.1 * CE + 0.9 * T^2 * KL(p_t^T || p_s^T); T = 4"
    # AT: every stage map of both networks (RepDistiller's feat[1:-1]): four for VGG and
    # MobileNetV2, the term's default three for resnet32x4 and ShuffleV1.
    at = variant("at")
    pairs = tuple((name, name) for name in four_stages)
    assert at.distillation_losses == ({"type": "at", "kwargs": {"beta": 1000.0, "pairs": pairs}},)
    assert at.teacher.taps == at.student.taps == four_stages
    three = variant("at", "resnet32x4", "ShuffleV1")
    assert three.distillation_losses == ({"type": "at", "kwargs": {"beta": 1000.0}},)
    assert three.student.taps == ("stage1", "stage2", "stage3")
    fitnet = variant("fitnet")
    (term,) = fitnet.distillation_losses
    assert term["kwargs"] == {"beta": 100.0, "teacher_output": "stage2", "student_output": "stage2"}
    assert fitnet.teacher.taps == fitnet.student.taps == ("stage2",)
    # FT translates the student's last stage map (feat[-2]): MobileNetV2's stage4, before its
    # final 1x1 convolution.
    ft = variant("ft")
    assert ft.distillation_losses == (
        {"type": "ft", "kwargs": {"beta": 200.0, "student_output": "stage4"}},
    )
    assert (ft.teacher.taps, ft.student.taps) == ((), ("stage4",))
    assert objective(ft).startswith("CE + 200 * D_1(translator(f_s), F_T)")
    crd = variant("crd")
    assert objective(crd) == (
        "CE + 0.8 * CRD; CRD: NCE over 16384 negatives, tau = 0.07, momentum 0.5"
    )
    for method, config in (("kd", kd), ("at", at), ("fitnet", fitnet), ("ft", ft), ("crd", crd)):
        assert (config.distiller.lambda_inh, config.distiller.lambda_exp) == (0.0, 0.0)
        with_ie = variant(f"ie_{method}")
        assert with_ie.distillation_losses == config.distillation_losses
        assert with_ie.student.taps == config.student.taps
        assert (with_ie.distiller.lambda_inh, with_ie.distiller.lambda_exp) == (50.0, 50.0)
        assert with_ie.distiller.student_loss_weight == config.distiller.student_loss_weight
    assert variant("student").distiller.lambda_inh == 0.0


def test_every_config_and_variant_validates(monkeypatch):
    import iekd_keras.models
    from iekd_keras.experiment import methods
    from iekd_keras.experiment.config_checks import validate_config

    archs = {arch for pair in PUBLISHED_TOP1 for arch in pair}
    require_registered(*sorted(archs))
    # validate_config and stage_taps build the models by name; each network is built once here.
    build_once = functools.cache(iekd_keras.models.get_model)
    monkeypatch.setattr(iekd_keras.models, "get_model", build_once)
    monkeypatch.setattr(methods, "get_model", build_once)
    failures = {}
    for path in CONFIGS:
        module = load(path)
        for variant in (*VARIANTS, "smoke", "ie_crd,smoke"):
            try:
                objective(validate_config(module.get_config(variant)))
            except Exception as error:  # every failure, reported together
                failures[f"{path.stem}:{variant}"] = f"{type(error).__name__}: {error}"
        with pytest.raises(ValueError, match="Unknown method 'large'"):
            module.get_config("large")
    assert not failures


@pytest.fixture(scope="module")
def imported_teacher(tmp_path_factory):
    """(checkpoint, teacher): a random-weight zoo teacher saved as .keras and loaded back as a
    run loads `config.teacher.checkpoint`, once per architecture (the pairs share teachers)."""
    from iekd_keras.experiment.evaluation import load_two_output_model
    from iekd_keras.models import get_model

    @functools.cache
    def save_and_load(arch):
        path = tmp_path_factory.mktemp("teachers") / f"{arch}.keras"
        get_model(f"repdistiller/{arch}", num_classes=100).save(path)
        return str(path), load_two_output_model(path, "teacher")

    return save_and_load


def every_term_config(teacher, student):
    """The default config with the terms of every method at once (KD, AT, FitNet, FT, CRD) and
    the taps they need: one step then checks each term against the pair's shapes."""
    config = repdistiller_cifar100(teacher, student)
    methods = [repdistiller_cifar100(teacher, student, m) for m in METHODS[2:]]
    specs = [dict(spec) for method in methods for spec in method.distillation_losses]
    for spec in specs:
        if spec["type"] == "crd":  # a memory of 8 examples: fewer negatives than examples
            spec["kwargs"] = {**spec["kwargs"], "num_negatives": 4}
    config.distillation_losses = tuple(specs)
    for role in ("teacher", "student"):
        taps = {name for method in methods for name in method[role].taps}
        config[role].taps = tuple(sorted(taps, key=lambda name: int(name.removeprefix("stage"))))
    return config


# Five pairs' teacher maps are larger than the student's (8x8 -> 4x4, 4x4 -> 2x2): their IE
# terms and FT run on the teacher factor resized (config.distiller.resize_teacher_factor).
RESIZED = {
    ("wrn_40_2", "ShuffleV1"),
    ("resnet32x4", "ShuffleV1"),
    ("resnet32x4", "ShuffleV2"),
    ("vgg13", "MobileNetV2"),
    ("ResNet50", "MobileNetV2"),
}
PAIRS = sorted(PUBLISHED_TOP1)


@pytest.mark.parametrize("pair", PAIRS, ids="->".join)
def test_one_ie_kd_step_of_each_pair_with_every_term(pair, imported_teacher):
    import keras

    from iekd_keras import CoupledWeightDecaySGD
    from iekd_keras.experiment import stages
    from iekd_keras.layers import FactorAutoencoder

    require_registered(*pair)
    config = every_term_config(*pair)
    config.teacher.checkpoint, teacher = imported_teacher(pair[0])
    data = types.SimpleNamespace(num_classes=100, input_shape=(32, 32, 3))
    student = stages.new_model(config.student.model, data, seed=0)
    sizes = {tuple(model.outputs[1].shape[1:3]) for model in (teacher, student)}
    assert (len(sizes) == 2) == (pair in RESIZED), sizes
    autoencoder = FactorAutoencoder(config.autoencoder.factor_channels)
    autoencoder.build(teacher.outputs[1].shape)
    terms = stages.distillation_terms(config, num_train_examples=8)
    distiller = stages.student_distiller(config, teacher, student, autoencoder.encoder, terms)
    distiller.compile(optimizer=CoupledWeightDecaySGD(0.01), run_eagerly=True)
    images = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    inputs = (images, np.array([0, 5], "int32"))
    before = [keras.ops.convert_to_numpy(model.weights[0]).copy() for model in (student, teacher)]
    logs = distiller.train_on_batch(inputs, np.array([3, 97], "int32"), return_dict=True)
    names = ("kd_loss", "at_loss", "fitnet_loss", "ft_loss", "crd_loss", "inheritance_loss")
    assert all(np.isfinite(logs[name]) and logs[name] != 0.0 for name in names), logs
    assert np.isfinite(logs["loss"]) and np.isfinite(logs["exploration_loss"])
    student_kernel, teacher_kernel = (model.weights[0] for model in (student, teacher))
    assert not np.array_equal(keras.ops.convert_to_numpy(student_kernel), before[0])
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(teacher_kernel), before[1])


def test_preflight_passes_with_an_imported_teacher(imported_teacher):
    from iekd_keras.experiment.preflight import check_run

    require_registered("vgg13", "vgg8")
    data = types.SimpleNamespace(
        name="cifar100", input_shape=(32, 32, 3), num_classes=100, num_train_examples=50000
    )
    config = repdistiller_cifar100("vgg13", "vgg8", "ie_at,smoke")
    with pytest.raises(FileNotFoundError, match="teachers/repdistiller/vgg13.keras' does not"):
        check_run(config, data)
    config.teacher.checkpoint, _ = imported_teacher("vgg13")
    check_run(config, data)  # four AT pairs on VGG's four stages, the IE terms, one forward


def test_preflight_passes_a_pair_whose_teacher_factor_is_resized(imported_teacher):
    from iekd_keras.experiment.preflight import check_run

    require_registered("resnet32x4", "ShuffleV2")
    data = types.SimpleNamespace(
        name="cifar100", input_shape=(32, 32, 3), num_classes=100, num_train_examples=50000
    )
    config = repdistiller_cifar100("resnet32x4", "ShuffleV2", "ie_kd,smoke")
    config.teacher.checkpoint, _ = imported_teacher("resnet32x4")
    check_run(config, data)  # 8x8 teacher factor resized to the student's 4x4 features
    config.distiller.resize_teacher_factor = False
    with pytest.raises(ValueError, match="need equal spatial sizes"):
        check_run(config, data)
