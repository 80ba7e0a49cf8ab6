"""Under MirroredStrategy over two CPUs, the custom train steps match one device on the same batch.

The Distiller (p = 1 and p = 2) and the FactorAutoencoderTrainer are fitted for 2 epochs of 13
samples in batches of 8, so every epoch ends with a batch of 5 that the two replicas split 3 + 2.
The reported metrics and the final weights must agree with a single-device fit from the same
initial weights to ~1e-5 relative. All BatchNorm layers that train are synchronized (see
`mirrored_strategy_check.py`), so BN normalises with global-batch statistics on both sides.

TensorFlow must be told about the two logical CPUs before it initialises its devices, so the fits
run in subprocesses (`mirrored_strategy_check.py`, through `tests/subprocess_checks.py`), two at
once, which write JSON summaries.
Each subprocess computes with one thread per pool and op determinism, so its numbers do not
depend on how loaded the machine is (measured: the same bits in 5 runs beside 2 CPU burners).
"""

import pytest

from tests.subprocess_checks import finish, start_check

CHECK = "tests.distillers.mirrored_strategy_check"
# Two subprocesses side by side; the naive run reuses the p = 2 single-device fit.
GROUPS = (("splits", "distiller_p1", "autoencoder_l1"), ("distiller_p2", "naive_distiller_p2"))
TOLERANCE = 1e-5
DISTILLER_METRICS = {"loss", "ce_loss", "inheritance_loss", "exploration_loss", "accuracy"}
AUTOENCODER_METRICS = {"loss", "reconstruction_loss"}


@pytest.fixture(scope="module")
def summary():
    summaries = finish([start_check(CHECK, *cases) for cases in GROUPS], timeout=240)
    return {case: result for summary in summaries for case, result in summary.items()}


def test_the_last_batch_splits_unevenly(summary):
    # 13 samples in batches of 8: 4 + 4 per replica, then 3 + 2.
    assert summary["splits"] == [[4, 4], [3, 2]]


@pytest.mark.parametrize(
    "case, metric_names",
    [
        ("distiller_p1", DISTILLER_METRICS),
        ("distiller_p2", DISTILLER_METRICS),
        ("autoencoder_l1", AUTOENCODER_METRICS),
    ],
)
def test_mirrored_fit_matches_one_device(summary, case, metric_names):
    result = summary[case]
    assert result["replicas"] == 2
    assert result["steps"] == 4
    assert set(result["metrics"]) == metric_names
    # The fit did something: weights moved by far more than the tolerance.
    assert result["max_abs_weight_update"] > 0.1
    # Per-epoch metrics (global over the epoch), per-step loss terms, and every final weight:
    # trainable ones, and BN moving statistics, equal here because BN is synchronized.
    assert max(result["metrics"].values()) < TOLERANCE, result["metrics"]
    assert max(result["step_terms"].values()) < TOLERANCE, result["step_terms"]
    assert result["trainable_weights"] < TOLERANCE, result["worst_trainable_weight"]
    assert result["weights"] < TOLERANCE, result["worst_weight"]


def test_a_naive_per_replica_mean_would_be_caught(summary):
    """Each replica averaging its own shard (then / replicas) drifts far past the tolerance."""
    naive = summary["naive_distiller_p2"]
    assert naive["replicas"] == 2
    assert naive["trainable_weights"] > 1000 * TOLERANCE
    for name in ("loss", "ce_loss", "inheritance_loss", "exploration_loss"):
        assert naive["metrics"][name] > 10 * TOLERANCE, name
