"""validate_config on a user's own config: every bad value gets one sentence naming the key, the
value and what was expected, before anything trains."""

import ml_collections
import pytest

from configs import quickstart
from iekd_keras.experiment.config_checks import ConfigError, validate_config

pytestmark = pytest.mark.backend_agnostic


def config_with(**changes):
    """The quickstart config with changes, as a user's own config file could write them."""
    tree = quickstart.get_config().to_dict()
    for path, value in changes.items():
        *groups, key = path.split("__")
        target = tree
        for group in groups:
            target = target[group]
        target[key] = value
    return ml_collections.ConfigDict(tree)


@pytest.mark.parametrize(
    "changes, message",
    [
        (
            {"distiller__lambda_ihn": 1.0},
            r"Unknown config key config.distiller.lambda_ihn. Did "
            r"you mean config.distiller.lambda_inh\?",
        ),
        ({"batch_size": "64"}, r"config.batch_size='64' has type str; expected int"),
        (
            {"distiller__lambda_exp": -1.0},
            r"config.distiller.lambda_exp=-1.0 is out of range: "
            r"expected >= 0",
        ),
        (
            {"distiller__split_ratio": 1.0},
            r"split_ratio=1.0 is out of range: expected strictly "
            "between 0 and 1",
        ),
        (
            {"student__model": "resnet21"},
            r"config.student.model: Unknown model name 'resnet21'. "
            r"Valid names .*resnet20.* Did you mean 'resnet20'\?",
        ),
        (
            {"data__name": "mnist"},
            r"config.data.name='mnist' is out of range: expected one of "
            r"\['digits', 'cifar10'",
        ),
        (
            {"optimizer__milestones": (8, 20)},
            r"milestones=\(8, 20\) reach past "
            "config.teacher.epochs=15",
        ),
        (
            {"distillation_losses": ({"type": "kd", "kwargs": {"temperature": 0.0}},)},
            r"config.distillation_losses\[0\] .*temperature.*0",
        ),
        ({"mutual__temperature": -1.0}, r"config.mutual.temperature=-1.0 is out of range"),
        (
            {"optimizer__momentum": 1.5},
            r"config.optimizer.momentum=1.5 is out of range: expected between 0 and 1",
        ),
    ],
)
def test_config_errors_name_key_value_and_expectation(changes, message):
    with pytest.raises(ConfigError, match=message):
        validate_config(config_with(**changes))


def test_shipped_quickstart_config_is_valid():
    validate_config(quickstart.get_config())
    validate_config(quickstart.get_config("smoke"))
