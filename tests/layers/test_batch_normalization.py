"""iekd_keras.layers.BatchNormalization (fused on TensorFlow) equals Keras's layer: outputs,
gradients and moving statistics under float32 and both mixed policies; its weights, config and
saved files are Keras's."""

import keras
import numpy as np
import pytest
from keras import ops

from iekd_keras.layers import BatchNormalization as FusedBatchNormalization
from tests.gradients import value_and_gradients

pytestmark = pytest.mark.backend_agnostic

POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")
SHAPE = (6, 5, 7, 4)  # odd spatial sizes, 210 values per channel


def pair(policy, **kwargs):
    """A Keras layer and a fused one with the same random gamma and beta, built for SHAPE."""
    keras.config.set_dtype_policy(policy)
    rng = np.random.default_rng(1)
    layers = [
        FusedBatchNormalization(momentum=0.9, epsilon=1e-5, **kwargs),
        keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, **kwargs),
    ]
    gamma, beta = rng.normal(1.0, 0.3, SHAPE[-1]), rng.normal(0.0, 0.3, SHAPE[-1])
    for layer in layers:
        layer.build(SHAPE)
        layer.gamma.assign(gamma.astype("float32"))
        layer.beta.assign(beta.astype("float32"))
    return layers


def batch(seed):
    rng = np.random.default_rng(seed)
    return rng.normal(2.0, 3.0, SHAPE).astype("float32")


def to_numpy(x):
    return ops.convert_to_numpy(ops.cast(x, "float32"))


def assert_close(actual, expected, dtype):
    """Within 1e-5 (absolute and relative); for a half-precision result, within one unit in the
    last place of that dtype, the rounding of the same float32 value computed in another order."""
    actual, expected = to_numpy(actual), to_numpy(expected)
    tolerance = 1e-5
    if dtype in ("float16", "bfloat16"):
        tolerance = {"float16": 2.0**-10, "bfloat16": 2.0**-7}[dtype]
    scale = max(float(np.max(np.abs(expected))), 1.0)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=tolerance * scale)


def train_step(layer, x, upstream):
    """The layer's training output, and the gradients of <output, upstream> with respect to
    the input, gamma and beta."""

    def loss():
        y = layer(ops.cast(x, layer.compute_dtype), training=True)
        return ops.sum(ops.cast(y, "float32") * upstream)

    variables = [x, layer.gamma, layer.beta]
    _, gradients = value_and_gradients(loss, variables)
    return layer(ops.cast(x, layer.compute_dtype), training=True), gradients


@pytest.mark.parametrize("policy", POLICIES)
def test_training_outputs_and_gradients_equal_keras(policy):
    fused, reference = pair(policy)
    x = keras.Variable(batch(0), dtype="float32")
    upstream = ops.convert_to_tensor(np.random.default_rng(2).normal(size=SHAPE), "float32")
    y, (dx, dgamma, dbeta) = train_step(fused, x, upstream)
    y_ref, (dx_ref, dgamma_ref, dbeta_ref) = train_step(reference, x, upstream)
    compute = fused.compute_dtype
    assert keras.backend.standardize_dtype(y.dtype) == compute
    assert_close(y, y_ref, compute)
    assert_close(dx, dx_ref, "float32")
    assert_close(dgamma, dgamma_ref, "float32")
    assert_close(dbeta, dbeta_ref, "float32")


@pytest.mark.parametrize("policy", POLICIES)
def test_moving_statistics_and_inference_equal_keras(policy):
    fused, reference = pair(policy)
    for seed in range(3):
        x = ops.cast(batch(seed), fused.compute_dtype)
        for layer in (fused, reference):
            layer(x, training=True)
    for name in ("moving_mean", "moving_variance"):
        actual, expected = getattr(fused, name), getattr(reference, name)
        assert keras.backend.standardize_dtype(actual.dtype) == "float32"
        assert_close(actual, expected, "float32")
    # The statistics moved: after three batches of variance 9 the moving variance is far from 1.
    assert float(np.min(to_numpy(reference.moving_variance))) > 2.0
    x = ops.cast(batch(9), fused.compute_dtype)
    assert_close(fused(x, training=False), reference(x, training=False), fused.compute_dtype)


def test_biased_variance_of_a_single_value_per_channel_is_zero():
    fused, reference = pair("float32")
    x = np.random.default_rng(3).normal(size=(1, 1, 1, SHAPE[-1])).astype("float32")
    for layer in (fused, reference):
        layer(x, training=True)
    np.testing.assert_allclose(to_numpy(fused.moving_variance), np.full(SHAPE[-1], 0.9))
    assert_close(fused.moving_variance, reference.moving_variance, "float32")
    assert_close(fused.moving_mean, reference.moving_mean, "float32")


def test_frozen_layer_normalises_with_its_moving_statistics():
    fused, reference = pair("float32")
    for layer in (fused, reference):
        layer(batch(0), training=True)
        layer.trainable = False
    moving = to_numpy(fused.moving_mean)
    assert_close(fused(batch(1), training=True), reference(batch(1), training=True), "float32")
    np.testing.assert_array_equal(to_numpy(fused.moving_mean), moving)


@pytest.mark.parametrize("kwargs", [{"center": False}, {"scale": False}, {"axis": 3}])
def test_options_equal_keras(kwargs):
    fused, reference = (
        FusedBatchNormalization(momentum=0.9, epsilon=1e-5, **kwargs),
        keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, **kwargs),
    )
    x = batch(0)
    assert_close(fused(x, training=True), reference(x, training=True), "float32")
    assert_close(fused.moving_variance, reference.moving_variance, "float32")
    assert_close(fused(x, training=False), reference(x, training=False), "float32")


def test_inputs_the_fused_kernel_does_not_take_run_keras_code():
    for shape, axis in (((5, 3), -1), ((4, 3, 6), -1), ((2, 3, 4, 5), 1)):
        fused = FusedBatchNormalization(axis=axis)
        reference = keras.layers.BatchNormalization(axis=axis)
        x = np.random.default_rng(0).normal(size=shape).astype("float32")
        assert_close(fused(x, training=True), reference(x, training=True), "float32")
        assert_close(fused.moving_variance, reference.moving_variance, "float32")


def test_weights_config_and_saved_file_are_keras_batch_normalization_s(tmp_path):
    inputs = keras.Input((5, 7, 4))
    outputs = FusedBatchNormalization(momentum=0.9, epsilon=1e-5, name="bn")(inputs)
    model = keras.Model(inputs, outputs)
    twin = keras.Model(
        inputs, keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name="bn")(inputs)
    )
    assert (
        [w.path for w in model.weights]
        == [w.path for w in twin.weights]
        == [
            "bn/gamma",
            "bn/beta",
            "bn/moving_mean",
            "bn/moving_variance",
        ]
    )
    layer = model.get_layer("bn")
    config = layer.get_config()
    assert config == twin.get_layer("bn").get_config()
    assert config["epsilon"] == 1e-5 and config["momentum"] == 0.9
    assert keras.saving.get_registered_name(FusedBatchNormalization) == (
        "iekd_keras>BatchNormalization"
    )
    layer(batch(0), training=True)
    path = tmp_path / "fused.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert type(restored.get_layer("bn")) is FusedBatchNormalization
    np.testing.assert_array_equal(to_numpy(restored(batch(1))), to_numpy(model(batch(1))))


@pytest.mark.parametrize("source_is_fused", [False, True])
def test_weights_load_across_the_two_classes(tmp_path, source_is_fused):
    def build(fused):
        inputs = keras.Input((5, 7, 4))
        cls = FusedBatchNormalization if fused else keras.layers.BatchNormalization
        return keras.Model(inputs, cls(momentum=0.9, epsilon=1e-5, name="bn")(inputs))

    source, target = build(source_is_fused), build(not source_is_fused)
    source.get_layer("bn")(batch(0), training=True)
    path = tmp_path / "bn.weights.h5"
    source.save_weights(path)
    target.load_weights(path)
    for saved, loaded in zip(source.weights, target.weights, strict=True):
        np.testing.assert_array_equal(to_numpy(loaded), to_numpy(saved))
    assert_close(target(batch(1)), source(batch(1)), "float32")


@pytest.mark.tensorflow_only
def test_tensorflow_runs_the_fused_kernel_only_where_it_can():
    import tensorflow as tf

    def kernels(layer, shape, training, dtype="float32"):
        function = tf.function(lambda x: layer(x, training=training))
        graph = function.get_concrete_function(tf.TensorSpec(shape, dtype)).graph
        return {op.type for op in graph.get_operations()}

    assert "FusedBatchNormV3" in kernels(FusedBatchNormalization(), (2, 3, 3, 4), True)
    assert "FusedBatchNormV3" in kernels(FusedBatchNormalization(), (2, 3, 3, 4), False)
    assert "FusedBatchNormV3" not in kernels(FusedBatchNormalization(), (2, 4), True)
    assert "FusedBatchNormV3" not in kernels(FusedBatchNormalization(axis=1), (2, 3, 3, 4), True)
    assert "FusedBatchNormV3" not in kernels(
        FusedBatchNormalization(synchronized=True), (2, 3, 3, 4), True
    )
    assert "FusedBatchNormV3" not in kernels(FusedBatchNormalization(renorm=True), (2, 3, 3, 4), 1)
    assert "FusedBatchNormV3" not in kernels(
        FusedBatchNormalization(dtype="float64"), (2, 3, 3, 4), True, "float64"
    )
    keras.config.set_dtype_policy("mixed_bfloat16")
    assert "FusedBatchNormV3" in kernels(FusedBatchNormalization(), (2, 3, 3, 4), 1, "bfloat16")


@pytest.mark.tensorflow_only
def test_synchronized_layer_runs_keras_code_with_the_same_result():
    fused, reference = pair("float32", synchronized=True)
    x = batch(0)
    assert_close(fused(x, training=True), reference(x, training=True), "float32")
    assert_close(fused.moving_variance, reference.moving_variance, "float32")


@pytest.mark.tensorflow_only
def test_fused_kernel_compiles_with_xla():
    import tensorflow as tf

    fused, reference = pair("float32")
    x = batch(0)
    outputs = []
    for layer in (fused, reference):
        step = tf.function(lambda x, layer=layer: layer(x, training=True), jit_compile=True)
        step(x)
        outputs.append(step(x))
    assert_close(*outputs, "float32")
    assert_close(fused.moving_variance, reference.moving_variance, "float32")
    assert_close(fused.moving_mean, reference.moving_mean, "float32")
