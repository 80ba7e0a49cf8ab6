"""IE-X from configs: each method family runs the staged smoke run with a shared teacher."""

import math

import pytest

from configs import (
    cifar10_resnet20b_resnet56b,
    cifar10_resnet56b_resnet20b,
    quickstart_compare,
    quickstart_dml,
)
from iekd_keras.data import load_digits
from iekd_keras.experiment.methods import (
    apply_method,
    formula,
    method_and_variant,
    objective,
    shared_stages,
    stage_taps,
)
from iekd_keras.experiment.recipes import base_config
from iekd_keras.experiment.train import train_and_evaluate
from iekd_keras.models import get_model


@pytest.fixture(scope="module")
def teacher_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("teacher") / "teacher.keras"
    get_model("resnet8", num_classes=10, input_shape=(8, 8, 1)).save(path)
    return path


@pytest.fixture(scope="module")
def digits():
    return load_digits(image_size=8)


@pytest.mark.parametrize(
    "method, term",
    [
        ("ie_kd", "kd_loss"),
        ("ie_at", "at_loss"),
        ("ie_ft", "ft_loss"),
        ("fitnet", "fitnet_loss"),
        ("ie_crd", "crd_loss"),
    ],
)
def test_each_method_family_runs_the_staged_smoke_run(
    method, term, teacher_checkpoint, digits, tmp_path
):
    config = quickstart_compare.get_config(f"{method},smoke")
    config.teacher.checkpoint = str(teacher_checkpoint)
    config.teacher.model = config.student.model = "resnet8"
    config.data.image_size = 8
    config.autoencoder.factor_channels = 8
    config.autoencoder.epochs = config.student.epochs = 1
    config.optimizer.milestones = ()
    config.batch_size = 256
    config.verbose = 0
    for loss in config.distillation_losses:
        if loss["type"] == "crd":
            loss["kwargs"] = {**loss["kwargs"], "num_negatives": 64, "embedding_dim": 16}
    results = train_and_evaluate(config, tmp_path, data=digits)
    logs = results["stages"]["student"]["final_logs"]
    assert math.isfinite(logs[term]) and logs[term] != 0.0
    ie = method.startswith("ie_")
    assert ("inheritance_loss" in logs) == ie


def test_methods_set_their_objectives():
    config = apply_method(base_config(), "kd")
    assert config.distiller.student_loss_weight == pytest.approx(0.1)
    assert config.distiller.lambda_inh == 0.0
    config = apply_method(base_config(), "ie_at")
    assert config.student.taps == ("stage1", "stage2", "stage3")
    assert config.distiller.lambda_exp == 50.0
    assert "50 * D_1(F_exp, F_T)" in formula("ie_ft")
    with pytest.raises(ValueError, match=r"Unknown method 'ie_kdd'.*Did you mean 'ie_kd'\?"):
        apply_method(base_config(), "ie_kdd")


def test_kd_settings_come_from_the_config():
    released_cifar10 = {"temperature": 20.0, "alpha": 0.95}
    config = apply_method(base_config(), "ie_kd", kd=released_cifar10)
    assert config.distillation_losses == ({"type": "kd", "kwargs": released_cifar10},)
    assert config.distiller.student_loss_weight == 0.05
    assert config.distiller.lambda_inh == 50.0
    assert formula("kd", kd=released_cifar10).startswith("0.05 * CE + 0.95 * T^2 * KL")
    assert formula("kd", kd=released_cifar10).endswith("T = 20")
    assert formula("kd") == "0.1 * CE + 0.9 * T^2 * KL(p_t^T || p_s^T); T = 4"
    # Other methods keep CE at weight 1 whatever the KD settings.
    assert apply_method(base_config(), "ft", kd=released_cifar10).distiller.student_loss_weight == 1
    with pytest.raises(ValueError, match=r"unknown keys \['T'\]; expected only \['alpha', 'temp"):
        apply_method(base_config(), "kd", kd={"T": 20.0})


def test_the_objective_is_written_from_the_configs_own_weights():
    # The same variants of two pairs: IE weights 50 and 1 (the reverse pair's), KD's T 20.
    ie_terms = "{w}D_1(F_inh, F_T) - {w}D_1(F_exp, F_T)"
    for module, weight in (
        (cifar10_resnet56b_resnet20b, "50 * "),
        (cifar10_resnet20b_resnet56b, ""),
    ):
        terms = ie_terms.format(w=weight)
        assert objective(module.get_config("ie")) == f"CE + {terms}"
        assert objective(module.get_config("ie_kd")) == (
            f"0.05 * CE + 0.95 * T^2 * KL(p_t^T || p_s^T) + {terms}; T = 20"
        )
        assert (
            objective(module.get_config("kd"))
            == "0.05 * CE + 0.95 * T^2 * KL(p_t^T || p_s^T); T = 20"
        )
    config = apply_method(base_config(), "ie_ft")
    config.distiller.lambda_inh, config.distiller.lambda_exp, config.distiller.p = 2, 0.5, 2.0
    config.distillation_losses = ({"type": "ft", "kwargs": {"beta": 250.0, "p": 2}},)
    assert objective(config) == (
        "CE + 250 * D_2(translator(f_s), F_T) + 2 * D_2(F_inh, F_T) - 0.5 * D_2(F_exp, F_T); "
        "full-width translator"
    )
    # Settings a config leaves out are the loss class's defaults; those it sets are its own.
    assert objective(quickstart_compare.get_config("crd")).endswith(
        "CRD: NCE over 1024 negatives, tau = 0.07, momentum 0.5"
    )
    assert formula("ie") == "CE + 50 * D_1(F_inh, F_T) - 50 * D_1(F_exp, F_T)"  # base_config's


def test_the_objective_of_mutual_learning():
    assert objective(quickstart_dml.get_config()) == "CE_k + T^2 * KL(p_-k || p_k); T = 1"
    config = quickstart_dml.get_config("ie")
    config.mutual.kl_weight, config.mutual.lambda_exp = 0.5, 10.0
    assert objective(config) == (
        "CE_k + 0.5 * T^2 * KL(p_-k || p_k) + 50 * D_1(F_k^inh, F_-k) - 10 * D_1(F_k^exp, F_-k) "
        "+ rec_k; T = 1; F_-k: the other peer's online auto-encoder factor"
    )


def test_at_taps_every_stage_output_both_models_share():
    # The shipped pairs have three stages each: the term's default pairs, kwargs as before.
    for module in (cifar10_resnet56b_resnet20b, quickstart_compare):
        config = module.get_config("ie_at")
        assert config.distillation_losses == ({"type": "at", "kwargs": {"beta": 1000.0}},)
        assert config.teacher.taps == config.student.taps == ("stage1", "stage2", "stage3")
    four = ("stage1", "stage2", "stage3", "stage4")
    assert stage_taps("resnet18") == four
    # A four-stage teacher and a three-stage student share three (RepDistiller's zip).
    assert shared_stages("resnet18", "resnet8") == four[:3]
    config = base_config()
    config.teacher.model = config.student.model = "resnet18"
    apply_method(config, "at")
    (term,) = config.distillation_losses
    assert term["kwargs"] == {"beta": 1000.0, "pairs": tuple((name, name) for name in four)}
    assert config.teacher.taps == config.student.taps == four
    config.teacher.model = "resnet9"
    with pytest.raises(ValueError, match=r"Unknown model name 'resnet9'"):
        apply_method(config, "ie_at")


def test_a_model_without_stage_outputs_is_refused(monkeypatch):
    import keras

    from iekd_keras.experiment import methods

    inputs = keras.Input((8, 8, 3))
    plain = keras.Model(inputs, keras.layers.Conv2D(2, 3, name="conv")(inputs))
    monkeypatch.setattr(methods, "get_model", lambda *args, **kwargs: plain)
    with pytest.raises(ValueError, match=r"Model 'plain' has no stage outputs \(layers named"):
        methods.stage_taps.__wrapped__("plain")


def test_a_config_argument_is_one_method_and_smoke():
    assert method_and_variant("ie_at,smoke") == ("ie_at", "smoke")
    assert method_and_variant("smoke") == ("ie", "smoke")
    assert method_and_variant(None, default="kd") == ("kd", None)
    with pytest.raises(ValueError, match=r"Config variant 'kd,at': give at most one method"):
        method_and_variant("kd,at")
