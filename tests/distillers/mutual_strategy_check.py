"""Fits the MutualDistiller on one device and under MirroredStrategy over two logical CPUs.

Run by `test_mutual_distiller.py` (`python -m tests.distillers.mutual_strategy_check [CASE ...]
[--out FILE]`, see `tests/subprocess_checks.py`), because TensorFlow's logical devices must be set
up before TensorFlow initialises them; `deterministic_logical_cpus` also gives them one thread
each and op determinism, so that every process computes the same bits however loaded the
machine is. For each case one set of initial weights is fitted twice on the same global
batches: with no strategy, and under `MirroredStrategy` over the two logical CPUs. 13 samples in
batches of 8 make every epoch end with a batch of 5 that the replicas split 3 + 2. Every
BatchNorm that trains is synchronized (the peers here, the encoders and auto-encoders through
`sync_batchnorm=True`), so both runs normalise with global-batch statistics. Writes a JSON
summary (to `--out`, else stdout) of the largest relative differences of the per-epoch metrics,
the per-step loss terms (and peer 1's terms of the first step, computed before any update) and
every final weight and optimizer variable (`mirrored_fits.py`).

The two runs still sum in different orders (a replica sums 3 samples, one device 5), so they
differ by float rounding, ~1e-7. Squared-error terms ("alternating_autoencoder_mse") keep that
difference at the rounding scale. With the L1 defaults ("alternating_autoencoder") the IE
distances and the reconstruction error have a sign for gradient: an element whose error is
within rounding of 0 can take the other sign in one run, which moves a weight by a whole
learning-rate step and can grow the difference a thousandfold within the 4 steps.
"""

import functools
import time

from tests.deterministic_cpus import deterministic_logical_cpus

DEVICES = deterministic_logical_cpus(2)

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from iekd_keras.distillers.mutual_distiller import MutualDistiller  # noqa: E402
from iekd_keras.optimizers.coupled_weight_decay_sgd import CoupledWeightDecaySGD  # noqa: E402
from tests.distillers.mirrored_fits import SAMPLES, compare, fit_twice  # noqa: E402
from tests.distillers.tiny_models import tiny_backbone, tiny_batches  # noqa: E402
from tests.subprocess_checks import check_main  # noqa: E402

CASES = {
    "alternating_autoencoder": {"update": "alternating", "lambda_inh": 5.0, "lambda_exp": 5.0},
    "alternating_autoencoder_mse": {
        "update": "alternating",
        "lambda_inh": 5.0,
        "lambda_exp": 5.0,
        "p": 2.0,
        "reconstruction": "mse",
    },
    "simultaneous_inheritance_p2": {
        "update": "simultaneous",
        "peer_factor": "inheritance",
        "lambda_inh": 5.0,
        "lambda_exp": 5.0,
        "p": 2.0,
        "split_mode": "random",
        "split_seed": 3,
    },
    "alternating_dml_t4": {"update": "alternating", "temperature": 4.0, "kl_weight": 0.5},
}


def build(settings):
    keras.utils.set_random_seed(0)
    mutual = MutualDistiller(
        tiny_backbone(channels=8, name="peer_a", synchronized=True),
        tiny_backbone(channels=6, name="peer_b", synchronized=True),
        factor_channels=4,
        sync_batchnorm=True,
        **settings,
    )
    return mutual.compile(
        optimizer=CoupledWeightDecaySGD(0.05),
        metrics=["accuracy"],
        run_eagerly=False,
        jit_compile=False,
    )


def run_case(settings, strategy, images, labels):
    start = time.perf_counter()
    single, mirrored, initial = fit_twice(
        functools.partial(build, settings), strategy, images, labels
    )
    # Peer 1's terms of the first step come from the initial weights, before any update.
    result = compare(mirrored, single, initial, lambda name: name.startswith("peer1_"))
    result["seconds"] = time.perf_counter() - start
    return result


def summarise(cases):
    strategy = tf.distribute.MirroredStrategy(DEVICES)
    images, labels = tiny_batches(SAMPLES)
    return {name: run_case(CASES[name], strategy, images, labels) for name in cases}


if __name__ == "__main__":
    check_main(__doc__, summarise, cases=tuple(CASES))
