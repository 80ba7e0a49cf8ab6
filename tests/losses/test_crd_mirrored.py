"""CRD under MirroredStrategy (two logical CPUs, an uneven 3 + 2 batch) matches one device.

The banks must be gathered from all replicas and scattered identically into every replica's
copy; see `mirrored_crd_check.py`, run in a subprocess because TensorFlow's logical devices must
be configured before it starts.
"""

from tests.subprocess_checks import run_check


def test_crd_state_matches_one_device_on_every_replica():
    summary = run_check("tests.losses.mirrored_crd_check", timeout=240)
    assert summary["replicas"] == 2 and summary["local_batches"] == [3, 2]
    assert abs(summary["mirrored_loss"] - summary["single_loss"]) < 1e-5 * summary["single_loss"]
    assert max(summary["vs_single"].values()) < 1e-5, summary["vs_single"]
    assert max(summary["between_copies"].values()) == 0.0, summary["between_copies"]
    assert summary["changed_rows"] == [2, 4, 9, 17, 30]
    assert summary["replica_negatives_differ"] and summary["sampler_states_equal"]
