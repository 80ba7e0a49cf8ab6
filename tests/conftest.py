"""Shared test settings: quiet TensorFlow, fixed seeds, the float32 policy restored after tests.

The backend is TensorFlow unless KERAS_BACKEND says otherwise. On another backend only the
tests marked `backend_agnostic` (and not `tensorflow_only`) run; the others need TensorFlow
itself (tf.data, tf.distribute, SavedModel, the tape's None for unconnected gradients)
and are skipped with a reason.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import pytest  # noqa: E402


def pytest_collection_modifyitems(config, items):
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return
    skip = pytest.mark.skip(reason=f"TensorFlow-only test; KERAS_BACKEND is {backend!r}")
    for item in items:
        if "backend_agnostic" not in item.keywords or "tensorflow_only" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    keras.utils.set_random_seed(0)
    keras.config.set_dtype_policy("float32")
    yield
    keras.config.set_dtype_policy("float32")
    keras.backend.clear_session()
