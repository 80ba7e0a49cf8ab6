"""Keys and types are the locked base_config()'s to refuse; config_checks tells which, in one
sentence, and keeps the ranges and the rules across keys."""

from pathlib import Path

import ml_collections
import pytest
from absl import flags
from ml_collections import config_flags

from configs import quickstart
from iekd_keras.experiment.config_checks import ConfigError, complete_config, validate_config
from iekd_keras.experiment.recipes import base_config

QUICKSTART = Path(__file__).parents[2] / "configs" / "quickstart.py"
pytestmark = pytest.mark.backend_agnostic


def test_base_config_is_locked_and_type_safe():
    config = base_config()
    with pytest.raises(AttributeError, match='Did you mean "lambda_inh" instead of "lamda_inh"'):
        config.distiller.lamda_inh = 1.0
    with pytest.raises(TypeError, match="'epochs'"):
        config.student.epochs = "ten"
    with pytest.raises(TypeError, match="'min_accuracy'"):
        config.teacher.min_accuracy = "high"  # a placeholder is typed although None
    config.distiller.lambda_inh = 1  # an int for a float, a list for a tuple: converted
    config.optimizer.milestones = [2, 4]
    assert (config.distiller.lambda_inh, config.optimizer.milestones) == (1.0, (2, 4))


def test_optional_keys_are_typed_placeholders():
    config = base_config()
    optional = {
        "data.data_dir": str,
        "data.manual_dir": str,
        "data.directory": str,
        "optimizer.scale_reference_batch_size": int,
        "teacher.l2_decay": float,
        "teacher.min_accuracy": float,
    }
    for path, expected in optional.items():
        group, key = path.split(".")
        assert config[group][key] is None and config[group].get_type(key) is expected, path
    assert not [
        f"{group}.{key}"
        for group, value in config.items()
        if isinstance(value, ml_collections.ConfigDict)
        for key in value
        if value[key] is None and f"{group}.{key}" not in optional
    ]


def plain(tree):
    """A config of the user's own: unlocked, not built from base_config()."""
    return ml_collections.ConfigDict(tree)


def test_an_unknown_key_is_told_with_the_closest_valid_one():
    tree = quickstart.get_config().to_dict()
    tree["distiller"]["lamda_inh"] = 1.0
    with pytest.raises(
        ConfigError,
        match=r"^Unknown config key config.distiller.lamda_inh. Did you mean "
        r"config.distiller.lambda_inh\? Valid keys here: \['distance_metric', ",
    ):
        validate_config(plain(tree))


@pytest.mark.parametrize(
    "group, key, value, message",
    [
        (None, "batch_size", "64", r"config.batch_size='64' has type str; expected int \(like "),
        ("teacher", "min_accuracy", "high", r"min_accuracy='high' has type str; expected float or"),
        (None, "distiller", 5, r"config.distiller must be a group of keys; got 5."),
    ],
)
def test_a_wrong_type_is_told_with_the_expected_one(group, key, value, message):
    tree = quickstart.get_config().to_dict()
    (tree[group] if group else tree)[key] = value
    with pytest.raises(ConfigError, match=message):
        validate_config(plain(tree))


def test_a_config_that_leaves_keys_out_gets_base_configs_values():
    partial = plain({"batch_size": 64, "distiller": {"lambda_inh": 1.0}, "teacher": {}})
    config = complete_config(partial)
    expected = base_config()
    expected.batch_size, expected.distiller.lambda_inh = 64, 1.0
    assert config.to_dict() == expected.to_dict() and config.is_locked
    assert validate_config(partial).to_dict() == expected.to_dict()
    # A shipped config: what it does not set is base_config()'s, placeholders included.
    config = validate_config(quickstart.get_config())
    assert (config.teacher.min_accuracy, config.teacher.get_type("min_accuracy")) == (None, float)
    assert config.autoencoder.to_dict() == {**base_config().autoencoder.to_dict(), "epochs": 5}


def test_range_and_cross_key_checks_stay():
    config = quickstart.get_config()
    config.teacher.min_accuracy = -0.5
    with pytest.raises(ConfigError, match=r"min_accuracy=-0.5 is out of range: expected >= 0."):
        validate_config(config)
    config = quickstart.get_config()
    config.teacher.select, config.teacher.select_from_epoch = "best", 16
    with pytest.raises(ConfigError, match=r"select_from_epoch=16 comes after .*epochs=15\)"):
        validate_config(config)


def parse(*overrides):
    """The config flag of the scripts, parsed as absl does it for scripts/train.py."""
    argv = ["train.py", f"--config={QUICKSTART}", *overrides]
    flag_values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", flag_values=flag_values, sys_argv=argv)
    flag_values(argv)
    return flag_values.config


def test_a_placeholder_is_set_from_the_command_line():
    config = parse(
        "--config.teacher.min_accuracy=0.5",
        "--config.optimizer.scale_reference_batch_size=256",
        "--config.data.data_dir=/data/tfds",
    )
    assert config.teacher.min_accuracy == 0.5 and isinstance(config.teacher.min_accuracy, float)
    assert config.optimizer.scale_reference_batch_size == 256
    assert config.data.data_dir == "/data/tfds"
    assert parse().teacher.min_accuracy is None
    with pytest.raises(flags.IllegalFlagValueError, match="could not convert string to float"):
        parse("--config.teacher.min_accuracy=high")


def test_export_formats_are_checked_before_the_run():
    with pytest.raises(
        ConfigError,
        match=r"^config.export_formats=\('saved_model', 'tflite'\) names 'tflite', which is not "
        r"an export format; expected one or more of saved_model, litert, litert_int8, onnx\.$",
    ):
        validate_config({"export_formats": ("saved_model", "tflite")})
    with pytest.raises(ConfigError, match=r"^config.export_formats=\(\) names no export format"):
        validate_config({"export_formats": ()})
    assert base_config().export_formats == ("saved_model",)
