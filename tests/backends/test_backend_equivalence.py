"""TensorFlow and JAX train the same stages to the same numbers; JAX DataParallel agrees with one
device. Each run is a fresh process: the backend and JAX's host device count are fixed when
Keras and JAX are imported, and the TensorFlow run turns on op determinism process-wide."""

import importlib.util

import keras
import numpy as np
import pytest

import iekd_keras  # noqa: F401  (registers the layers the checkpoints hold)
from tests.backends import backend_run
from tests.subprocess_checks import check_env, run_check, run_python

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed"),
    pytest.mark.skipif(
        keras.backend.backend() != "tensorflow", reason="run once, in the TensorFlow pass"
    ),
]


def _run(backend, directory, name, trainers, devices=1):
    # One thread per process: multi-threaded reductions may split differently when other
    # tests load the machine, and the mutual stage amplifies such differences past 1e-4.
    env = check_env(backend, OMP_NUM_THREADS="1")
    env.update(TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1")
    if backend == "jax":
        flags = f"--xla_force_host_platform_device_count={devices}"
        flags += " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        env.update(JAX_PLATFORMS="cpu", XLA_FLAGS=flags)
    arguments = [f"--trainers={','.join(trainers)}", f"--directory={directory}", f"--name={name}"]
    arguments += ["--data_parallel"] if devices > 1 else []
    run_check(backend_run.__name__, *arguments, env=env, summary=False, timeout=400)
    return {trainer: dict(np.load(directory / f"{trainer}_{name}.npz")) for trainer in trainers}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every trainer trained on TensorFlow (it writes the initial weights), then on JAX from
    the same weights; each backend in one fresh process (TensorFlow with op determinism)."""
    directory = tmp_path_factory.mktemp("backends")
    tensorflow_runs = _run("tensorflow", directory, "tensorflow", backend_run.TRAINERS)
    jax_runs = _run("jax", directory, "jax", backend_run.TRAINERS)
    return directory, tensorflow_runs, jax_runs


def _assert_same_run(expected, actual, atol):
    assert sorted(expected) == sorted(actual)
    for key in expected:
        if key == "backend":
            continue
        np.testing.assert_allclose(actual[key], expected[key], rtol=0, atol=atol, err_msg=key)


@pytest.mark.parametrize("trainer", backend_run.TRAINERS)
def test_tensorflow_and_jax_give_the_same_terms_and_weights(runs, trainer):
    _, tensorflow_runs, jax_runs = runs
    tensorflow_run, jax_run = tensorflow_runs[trainer], jax_runs[trainer]
    assert str(tensorflow_run["backend"]) == "tensorflow" and str(jax_run["backend"]) == "jax"
    assert int(jax_run["iterations"]) == backend_run.STEPS
    # Every logged term of each of the 5 steps, the evaluation and every final weight
    # (BatchNorm moving statistics included) within 1e-4; measured: 5e-7 at most.
    _assert_same_run(tensorflow_run, jax_run, atol=1e-4)
    terms = [key for key in jax_run if key.startswith("history/") and "loss" in key]
    assert len(terms) >= 2 and all(np.all(np.isfinite(jax_run[key])) for key in terms)


@pytest.mark.parametrize("trainer", backend_run.TRAINERS)
def test_a_checkpoint_saved_on_jax_loads_on_tensorflow(runs, trainer):
    directory = runs[0]
    from_jax = keras.saving.load_model(directory / f"{trainer}_jax.keras", compile=False)
    from_tensorflow = keras.saving.load_model(
        directory / f"{trainer}_tensorflow.keras", compile=False
    )
    assert [w.path for w in from_jax.weights] == [w.path for w in from_tensorflow.weights]
    for a, b in zip(from_jax.weights, from_tensorflow.weights, strict=True):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b), atol=1e-4, err_msg=a.path
        )


def test_jax_data_parallel_over_two_devices_matches_one_device(runs):
    directory, _, one_device = runs
    two_devices = _run("jax", directory, "data_parallel", ["distiller"], devices=2)
    # The global batch is the same; only the reduction order differs (measured: 4e-7).
    _assert_same_run(one_device["distiller"], two_devices["distiller"], atol=1e-5)


def test_config_distribution_picks_data_parallel_on_jax():
    script = """
import keras
from iekd_keras.distribute.strategies import make_strategy
mirrored = make_strategy("mirrored")
assert isinstance(mirrored.distribution, keras.distribution.DataParallel), mirrored.distribution
assert mirrored.num_replicas_in_sync == 2
single = make_strategy("one_device")
assert single.distribution is None and single.num_replicas_in_sync == 1
assert make_strategy("auto").num_replicas_in_sync == 1  # no GPUs: one device
try:
    make_strategy("multi_worker")
except ValueError as error:
    assert "TensorFlow's MultiWorkerMirroredStrategy" in str(error), error
else:
    raise AssertionError("multi_worker was accepted on JAX")
print("OK")
"""
    flags = "--xla_force_host_platform_device_count=2"
    env = check_env("jax", JAX_PLATFORMS="cpu", XLA_FLAGS=flags)
    finished = run_python(script, env=env, timeout=120)
    assert "OK" in finished.stdout, finished.report()
