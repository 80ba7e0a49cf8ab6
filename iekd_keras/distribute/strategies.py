"""Distribution strategies and numeric precision of a run, chosen by config."""

import contextlib
import warnings

import keras

STRATEGIES = ("auto", "mirrored", "multi_worker", "one_device")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


def make_strategy(name):
    """The distribution a config names: a `tf.distribute` strategy on TensorFlow, a
    `KerasDataParallel` (keras.distribution) on JAX.

    - "auto": over every visible GPU when there are several, else one device.
    - "mirrored": over every visible GPU (the CPU when there is none). On JAX, over every
      device JAX sees (e.g. `XLA_FLAGS=--xla_force_host_platform_device_count=2` on a CPU).
    - "multi_worker": MultiWorkerMirroredStrategy; the cluster comes from the TF_CONFIG
      environment variable of each worker (TensorFlow only).
    - "one_device": the first GPU, else the CPU.

    On JAX it first hides the GPUs from TensorFlow (`hide_gpus_from_tensorflow`), which then
    only runs the tf.data pipelines, on the CPU.
    """
    if name not in STRATEGIES:
        raise ValueError(f"distribution={name!r} is not supported; expected one of {STRATEGIES}.")
    if keras.backend.backend() == "jax":
        hide_gpus_from_tensorflow()
        return _jax_distribution(name)
    import tensorflow as tf

    if name == "multi_worker":
        # Before anything that starts TensorFlow's runtime (listing devices does).
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")


def hide_gpus_from_tensorflow():
    """Keeps TensorFlow off the GPUs: `tf.config.set_visible_devices([], "GPU")`.

    On JAX, TensorFlow only feeds the tf.data pipelines; left alone, its runtime would reserve
    most of each GPU's memory at its first op and place ops there, beside JAX (flax and
    big_vision hide the GPUs the same way). It must run before TensorFlow's first op: the
    training entry point calls it through `make_strategy`, before any data is loaded. Later,
    or on a machine without GPUs, it changes nothing; it warns if TensorFlow already holds a GPU.

    Example:
        >>> hide_gpus_from_tensorflow()  # before building any tf.data pipeline
        >>> tf.config.get_visible_devices("GPU")
        []
    """
    try:
        import tensorflow as tf
    except ImportError:  # nothing to hide
        return
    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # TensorFlow's runtime has started: its devices are fixed
        gpus = tf.config.get_visible_devices("GPU")
        if gpus:
            warnings.warn(
                f"TensorFlow already uses {len(gpus)} GPU(s) beside JAX (it ran an op before "
                "hide_gpus_from_tensorflow()), so it may hold most of their memory; build no "
                "tf.data pipeline or tensor before make_strategy() on KERAS_BACKEND=jax.",
                stacklevel=2,
            )


class KerasDataParallel:
    """What `train_and_evaluate` needs of a strategy, for JAX: `scope()` and
    `num_replicas_in_sync`, over a `keras.distribution.DataParallel` (or one device).

    Under DataParallel the model's variables are replicated and each batch is sharded along
    its first axis; the step works on global arrays, so every loss term, metric and BatchNorm
    statistic is already a global-batch value.

    Example:
        >>> strategy = KerasDataParallel(keras.distribution.list_devices())
        >>> with strategy.scope():
        ...     model = build_model()
    """

    def __init__(self, devices=None):
        devices = list(devices or [])
        self.distribution = (
            keras.distribution.DataParallel(devices=devices) if len(devices) > 1 else None
        )
        self.num_replicas_in_sync = max(len(devices), 1)

    def scope(self):
        if self.distribution is None:
            return contextlib.nullcontext()
        return self.distribution.scope()


def _jax_distribution(name):
    if name == "multi_worker":
        raise ValueError(
            "distribution='multi_worker' runs on TensorFlow's MultiWorkerMirroredStrategy; "
            "KERAS_BACKEND is 'jax'. Use KERAS_BACKEND=tensorflow for several machines, or "
            "'mirrored' for every device of this one."
        )
    if name == "one_device":
        return KerasDataParallel()
    gpus = keras.distribution.list_devices("gpu") if _has_gpu() else []
    if name == "auto":
        return KerasDataParallel(gpus if len(gpus) > 1 else None)
    return KerasDataParallel(gpus or keras.distribution.list_devices())


def _has_gpu():
    import jax

    return any(device.platform == "gpu" for device in jax.devices())


def set_precision(name):
    """Sets Keras's global dtype policy. Losses and their reductions stay float32 (the IE loss
    layers and the distillers cast to float32); "mixed_float16" gets dynamic loss scaling from
    `compile`, which wraps the optimizer in a LossScaleOptimizer."""
    if name not in PRECISIONS:
        raise ValueError(f"precision={name!r} is not supported; expected one of {PRECISIONS}.")
    keras.config.set_dtype_policy(name)


def gpu_count():
    """How many GPUs the backend computes on (0 on a CPU-only machine; on JAX, TensorFlow's
    hidden GPUs do not count)."""
    if keras.backend.backend() == "jax":
        import jax

        return sum(device.platform == "gpu" for device in jax.devices())
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return len(tf.config.list_logical_devices("GPU"))
    return 0


def resolve_determinism(deterministic, jit_compile=False):
    """Whether a run turns on op determinism, and the line that says so at its start.

    `deterministic` is `config.deterministic`: True or False as set, or None ("auto", the
    default): on for a CPU run without XLA, where it costs little and a resumed run repeats an
    uninterrupted one bit for bit; off on GPUs, where deterministic kernels are slower and
    Keras would also drop XLA, and off when `jit_compile` asks for XLA. Only TensorFlow has the
    switch: JAX's CPU steps repeat exactly as they are, and its GPU reductions may reorder.

    Example:
        >>> resolve_determinism(None)  # on a CPU-only machine, TensorFlow
        (True, 'Op determinism: on (config.deterministic=None on the CPU): ...')
    """
    backend = keras.backend.backend()
    gpus = gpu_count()
    if backend != "tensorflow":
        if gpus:
            return False, (
                f"Op determinism: not a switch on {backend} ({gpus} GPU(s)): reductions may "
                "reorder, so a resumed run may differ from an uninterrupted one in the last bits."
            )
        return False, (
            f"Op determinism: not a switch on {backend} (the CPU): its steps repeat exactly, "
            "and a resumed run repeats the uninterrupted one bit for bit."
        )
    if deterministic is None:
        on = not gpus and not jit_compile
        why = f"config.deterministic=None {'with XLA' if jit_compile else ''}".rstrip()
        why += f" on {gpus} GPU(s)" if gpus else " on the CPU"
    else:
        on, why = bool(deterministic), f"config.deterministic={bool(deterministic)}"
    if on:
        return True, (
            f"Op determinism: on ({why}): the same config and seed give the same numbers, and a "
            "resumed run repeats the uninterrupted one bit for bit; XLA is off."
        )
    return False, (
        f"Op determinism: off ({why}): faster kernels, but two runs (or a resumed and an "
        "uninterrupted one) agree only up to floating-point reordering; set "
        "config.deterministic=True for bit-exact repeats."
    )


def check_jit_compile(jit_compile, strategy, deterministic=False):
    """XLA under a multi-replica strategy on CPU devices fails inside TensorFlow 2.21
    ("resource located in device CPU:1 from CPU:0"), and Keras silently turns XLA off under
    TensorFlow's op determinism: refuse both with a clear message."""
    if keras.backend.backend() != "tensorflow":
        return  # JAX compiles every step with XLA, on any device layout
    import tensorflow as tf

    if jit_compile and deterministic:
        raise ValueError(
            "jit_compile=True with deterministic=True: Keras runs without XLA once "
            "TensorFlow's op determinism is on. Set config.deterministic=False to use XLA "
            "(results are then reproducible only up to floating-point reordering)."
        )
    if (
        jit_compile
        and strategy.num_replicas_in_sync > 1
        and not tf.config.list_logical_devices("GPU")
    ):
        raise ValueError(
            f"jit_compile=True with {strategy.num_replicas_in_sync} replicas on CPU devices is "
            "not supported by TensorFlow (XLA cannot place per-replica resources across CPU "
            "devices); set config.jit_compile=False or run on GPUs."
        )


def scaled_learning_rate(base_learning_rate, global_batch_size, reference_batch_size):
    """The linear scaling rule: lr * global_batch / reference_batch (None: no scaling)."""
    if not reference_batch_size:
        return base_learning_rate
    return base_learning_rate * global_batch_size / reference_batch_size
