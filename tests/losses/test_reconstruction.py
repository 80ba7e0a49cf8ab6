"""Reconstruction options compute what they are named for; the former "l2" is refused by name."""

import keras
import numpy as np
import pytest
from keras import ops

from configs import quickstart
from iekd_keras.experiment.config_checks import ConfigError, validate_config
from iekd_keras.losses.reconstruction import (
    RECONSTRUCTIONS,
    check_reconstruction,
    reconstruction_share,
)
from tests.gradients import value_and_gradients

pytestmark = pytest.mark.backend_agnostic

RNG = np.random.default_rng(0)
RECONSTRUCTED = RNG.normal(size=(2, 3, 3, 4)).astype("float32")
TARGET = RNG.normal(size=(2, 3, 3, 4)).astype("float32")
ERROR = RECONSTRUCTED.astype("float64") - TARGET

NUMPY_FORMS = {
    "l1": lambda e: np.mean(np.abs(e)),
    "mse": lambda e: np.mean(e**2),
    # The released RecLoss(p=2): ||e||_2 / sqrt(numel) over the whole batch tensor.
    "rms": lambda e: np.linalg.norm(e.ravel()) / np.sqrt(e.size),
}


def test_the_options_are_the_three_forms():
    assert RECONSTRUCTIONS == tuple(NUMPY_FORMS)


@pytest.mark.parametrize("name", RECONSTRUCTIONS)
def test_each_option_equals_its_numpy_form(name):
    value = reconstruction_share(RECONSTRUCTED, TARGET, name)
    np.testing.assert_allclose(float(value), NUMPY_FORMS[name](ERROR), rtol=1e-6)


def test_golden_values_and_rms_over_the_whole_batch():
    reconstructed = np.array([[3.0, 0.0], [0.0, 0.0]], "float32")  # errors 3 (sample 0), 0
    values = {
        name: float(reconstruction_share(reconstructed, 0 * reconstructed, name))
        for name in RECONSTRUCTIONS
    }
    assert values == pytest.approx({"l1": 0.75, "mse": 2.25, "rms": 1.5})
    # Not a mean of per-sample roots: those would be (3 / sqrt(2) + 0) / 2 = 1.06.
    assert values["rms"] != pytest.approx(3 / np.sqrt(2) / 2, rel=1e-3)


def test_rms_gradient_is_error_over_count_times_rms():
    reconstructed = keras.Variable(RECONSTRUCTED)
    value, (gradient,) = value_and_gradients(
        lambda: reconstruction_share(reconstructed, TARGET, "rms"), [reconstructed]
    )
    rms = NUMPY_FORMS["rms"](ERROR)
    np.testing.assert_allclose(float(value), rms, rtol=1e-6)
    np.testing.assert_allclose(
        ops.convert_to_numpy(gradient), ERROR / (ERROR.size * rms), rtol=1e-5, atol=1e-9
    )


def test_unknown_and_renamed_options_are_refused():
    with pytest.raises(ValueError, match=r"reconstruction='l3' is not supported; expected one of"):
        check_reconstruction("l3")
    with pytest.raises(ValueError, match=r"reconstruction='l2' was renamed: choose 'mse' .* 'rms'"):
        check_reconstruction("l2")
    assert check_reconstruction("rms") == "rms"


@pytest.mark.parametrize("group", ["autoencoder", "mutual"])
def test_config_validation_refuses_l2_by_name_and_accepts_the_new_names(group):
    config = quickstart.get_config()
    config[group].reconstruction = "l2"
    with pytest.raises(
        ConfigError, match=rf"config.{group}.reconstruction='l2' was renamed: choose 'mse'"
    ):
        validate_config(config)
    for name in RECONSTRUCTIONS:
        config[group].reconstruction = name
        validate_config(config)
    config[group].reconstruction = "l3"
    with pytest.raises(ConfigError, match=r"'l3' is out of range: expected one of \['l1', 'mse'"):
        validate_config(config)
