"""Precision, XLA and strategy options: same numbers, float32 losses, clear refusals."""

import json
import os
import subprocess
import sys
import types
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from iekd_keras import CoupledWeightDecaySGD, Distiller
from iekd_keras.distribute.strategies import (
    check_jit_compile,
    hide_gpus_from_tensorflow,
    make_strategy,
    resolve_determinism,
    scaled_learning_rate,
    set_precision,
)
from iekd_keras.layers import FactorAutoencoder
from tests.distillers.tiny_models import tiny_backbone, tiny_batches


def build_distiller(seed=0):
    keras.utils.set_random_seed(seed)
    teacher = tiny_backbone(channels=8, name="teacher")
    autoencoder = FactorAutoencoder(4)
    autoencoder.build(teacher.outputs[1].shape)
    return Distiller(teacher, tiny_backbone(channels=6, name="student"), autoencoder.encoder)


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_keeps_losses_float32_and_finite(precision):
    set_precision(precision)
    distiller = build_distiller()
    assert distiller.student.layers[1].compute_dtype != "float32"
    images, labels = tiny_batches(8)
    with tf.GradientTape() as tape:
        terms, _ = distiller.compute_terms(images, labels, training=True)
    for name, value in terms.items():
        assert value.dtype == "float32", name
        assert np.isfinite(float(value)), name
    gradients = tape.gradient(terms["loss"], distiller.trainable_variables)
    assert all(np.all(np.isfinite(ops.convert_to_numpy(g))) for g in gradients)
    distiller.compile(optimizer=CoupledWeightDecaySGD(0.05), run_eagerly=True)
    if precision == "mixed_float16":
        assert isinstance(distiller.optimizer, keras.optimizers.LossScaleOptimizer)
    history = distiller.fit(images, labels, batch_size=8, epochs=1, verbose=0)
    assert all(np.isfinite(v[0]) for v in history.history.values())


def xla_parity_losses():
    """Losses of two epochs with and without XLA; run in a fresh process (see below)."""
    images, labels = tiny_batches(16)
    losses = {}
    for jit_compile in (False, True):
        distiller = build_distiller().compile(
            optimizer=CoupledWeightDecaySGD(0.05), jit_compile=jit_compile
        )
        assert distiller.jit_compile is jit_compile
        history = distiller.fit(images, labels, batch_size=8, epochs=2, verbose=0, shuffle=False)
        losses[str(jit_compile)] = {k: list(map(float, v)) for k, v in history.history.items()}
    return losses


def test_xla_and_plain_graph_give_the_same_losses():
    # Keras turns XLA off once TensorFlow's op determinism is on, which is process-wide and
    # irreversible (other tests' runs enable it): compare in a fresh process.
    code = (
        "import json; from tests.distribute.test_strategies import xla_parity_losses; "
        "print('LOSSES', json.dumps(xla_parity_losses()))"
    )
    # One thread per pool: a loaded machine then cannot change how a kernel splits its sums.
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.update(TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(row for row in result.stdout.splitlines() if row.startswith("LOSSES "))
    losses = json.loads(line[len("LOSSES ") :])
    for name, values in losses["False"].items():
        np.testing.assert_allclose(losses["True"][name], values, rtol=2e-4, atol=1e-5, err_msg=name)


def test_xla_under_op_determinism_is_refused():
    with pytest.raises(ValueError, match="jit_compile=True with deterministic=True"):
        check_jit_compile(True, types.SimpleNamespace(num_replicas_in_sync=1), deterministic=True)


def test_xla_with_replicas_on_cpu_is_refused():
    fake_strategy = types.SimpleNamespace(num_replicas_in_sync=2)
    with pytest.raises(ValueError, match="jit_compile=True with 2 replicas on CPU devices"):
        check_jit_compile(True, fake_strategy)
    check_jit_compile(False, fake_strategy)


def test_strategy_names_and_errors():
    assert make_strategy("auto").num_replicas_in_sync == 1
    assert make_strategy("one_device").num_replicas_in_sync == 1
    with pytest.raises(ValueError, match="distribution='tpu' is not supported"):
        make_strategy("tpu")
    with pytest.raises(ValueError, match="precision='float8' is not supported"):
        set_precision("float8")


# On KERAS_BACKEND=jax, the first entry point (make_strategy for training, load_dataset for
# evaluation and export) hides the GPUs from TensorFlow before its first op; the spy records the
# call (this machine has no GPU), and tf.data still runs afterwards, on the CPU.
HIDDEN_ON_JAX = """
import warnings
import keras
import tensorflow as tf
from iekd_keras.data import load_dataset
from iekd_keras.distribute.strategies import make_strategy
from iekd_keras.experiment.recipes import base_config

assert keras.backend.backend() == "jax"
calls = []
original = tf.config.set_visible_devices
def spy(devices, device_type=None):
    calls.append((list(devices), device_type))
    return original(devices, device_type)
tf.config.set_visible_devices = spy
warnings.simplefilter("error")
ENTRY
assert calls == [([], "GPU")], calls
assert tf.config.get_visible_devices("GPU") == []
assert tf.config.list_logical_devices("GPU") == []
total = tf.data.Dataset.range(5).reduce(tf.constant(0, tf.int64), lambda a, b: a + b)
assert int(total) == 10
assert make_strategy("one_device").num_replicas_in_sync == 1  # after TF's first op: harmless
assert len(calls) == 2
print("HIDDEN")
"""


DIGITS = "data = base_config().data; data.name = 'digits'; load_dataset(data)"


@pytest.mark.parametrize("entry", ['make_strategy("auto")', DIGITS])
def test_the_first_entry_point_hides_the_gpus_from_tensorflow_on_jax(entry):
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, "-c", HIDDEN_ON_JAX.replace("ENTRY", entry)],
        cwd=Path(__file__).parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0 and "HIDDEN" in result.stdout, result.stderr[-3000:]


def test_hiding_the_gpus_too_late_warns_when_tensorflow_holds_one(monkeypatch):
    def started(devices, device_type=None):
        raise RuntimeError("Visible devices cannot be modified after being initialized")

    monkeypatch.setattr(tf.config, "set_visible_devices", started)
    monkeypatch.setattr(tf.config, "get_visible_devices", lambda device_type=None: ["GPU:0"])
    with pytest.warns(UserWarning, match=r"TensorFlow already uses 1 GPU\(s\) beside JAX"):
        hide_gpus_from_tensorflow()
    monkeypatch.setattr(tf.config, "get_visible_devices", lambda device_type=None: [])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hide_gpus_from_tensorflow()  # nothing to warn about without a GPU


def test_linear_learning_rate_scaling():
    assert scaled_learning_rate(0.1, 512, 128) == pytest.approx(0.4)
    assert scaled_learning_rate(0.1, 512, None) == 0.1


@pytest.mark.parametrize(
    "deterministic, jit_compile, gpus, expected, said",
    [
        (None, False, 0, True, "on (config.deterministic=None on the CPU)"),
        (None, True, 0, False, "off (config.deterministic=None with XLA on the CPU)"),
        (None, False, 1, False, "off (config.deterministic=None on 1 GPU(s))"),
        (True, False, 2, True, "on (config.deterministic=True)"),
        (False, False, 0, False, "off (config.deterministic=False)"),
    ],
)
def test_determinism_policy(monkeypatch, deterministic, jit_compile, gpus, expected, said):
    """None ("auto") is on for a CPU run without XLA and off on GPUs or with XLA; an explicit
    value wins; the printed line names the choice and what it means for a resumed run."""
    from iekd_keras.distribute import strategies

    monkeypatch.setattr(strategies, "gpu_count", lambda: gpus)
    on, line = resolve_determinism(deterministic, jit_compile)
    assert on is expected
    assert line.startswith(f"Op determinism: {said}:"), line
    assert ("bit for bit" if expected else "config.deterministic=True") in line
