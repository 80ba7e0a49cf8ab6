"""The library's BatchNormalization equals Keras's under MirroredStrategy (two logical CPUs), for
float32 and both mixed policies, with and without `synchronized`; see
`mirrored_batch_norm_check.py`, run in a subprocess because TensorFlow's logical devices must be
configured before it starts."""

from tests.subprocess_checks import run_check

# One unit in the last place of each output dtype (the same float32 value rounded after a
# computation in another order); 1e-5 for every float32 result.
OUTPUT_TOLERANCE = {"float32": 1e-5, "mixed_float16": 2.0**-10, "mixed_bfloat16": 2.0**-7}


def test_fused_batch_norm_equals_keras_on_every_replica():
    summary = run_check("tests.layers.mirrored_batch_norm_check", timeout=300)
    assert summary.pop("replicas") == 2
    assert len(summary) == 6
    for case, result in summary.items():
        policy, sync = case.split(":")
        differences = result["differences"]
        for name in ("outputs", "input_gradients"):
            assert differences[name] <= OUTPUT_TOLERANCE[policy], (case, differences)
        for name in ("summed_gradients", "moving_mean", "moving_variance"):
            assert differences[name] <= 1e-5, (case, differences)
        assert result["moving_variance_moved"] > 0.1
        assert result["reference_kernels"] == []
        if sync == "synchronized":
            # Keras's code runs, with global batch statistics: the same numbers, the same copies.
            assert result["kernels"] == [] and max(differences.values()) == 0.0, (case, result)
            assert result["copies_equal"] and result["reference_copies_equal"]
        else:
            assert result["kernels"] == ["FusedBatchNormGradV3", "FusedBatchNormV3"], case
            # Each replica keeps its own statistics, as with Keras's layer.
            assert result["copies_equal"] == result["reference_copies_equal"], case
