"""Teachers trained with PyTorch, imported into the library's Keras networks.

Three steps, each usable alone:

* :func:`read_pytorch_checkpoint` reads a ``.pth`` / ``.pth.tar`` file into
  ``{tensor name: numpy array}`` (torch is imported there, only to read the file, with
  ``weights_only=True``: no pickled code runs);
* :func:`load_pytorch_state` assigns such a state to a Keras model, converting each tensor by
  the type of the Keras layer that receives it, after checking every tensor and weight;
* :func:`import_teacher` does both for a network of a zoo (``"repdistiller"``: the networks of
  RepDistiller's ``models/``; ``"iekd"``: those of the IE-KD authors' released code).

A tensor ``<module path>.<suffix>`` goes to the Keras layer ``keras_layer_name(<module path>)``;
the suffix names the weight:

=========================  =======================  ===========================================
Keras layer                PyTorch suffix           conversion
=========================  =======================  ===========================================
``Conv2D`` (any groups)    ``weight`` / ``bias``    kernel (out, in/groups, kh, kw) -> (kh, kw,
                                                    in/groups, out)
``DepthwiseConv2D``        ``weight`` / ``bias``    kernel (C * m, 1, kh, kw) -> (kh, kw, C, m)
``Dense``                  ``weight`` / ``bias``    kernel (out, in) -> (in, out)
``BatchNormalization``     ``weight``, ``bias``,    gamma, beta, moving_mean, moving_variance
                           ``running_mean``,
                           ``running_var``
=========================  =======================  ===========================================

``num_batches_tracked`` (a counter of PyTorch's batch norm) is ignored.
"""

import argparse
import dataclasses
import os
from collections.abc import Callable, Mapping

import keras
import numpy as np

# Counters PyTorch keeps beside the weights; Keras has no counterpart.
IGNORED_SUFFIXES = ("num_batches_tracked",)
# The keys under which training scripts store the network's state_dict: "model" in
# RepDistiller's train_teacher.py and in the base processor of the released IE-KD code.
DEFAULT_STATE_KEYS = ("model",)
# DataParallel / DistributedDataParallel wrap the network as the attribute "module".
DATA_PARALLEL_PREFIX = "module."
# A refusal lists this many names of each kind, then how many more there are.
_LISTED_NAMES = 4
_UNPICKLER_REASON = "WeightsUnpickler error: "
_INSTALL_TORCH = (
    "Reading PyTorch checkpoints needs torch: install the project's 'pytorch' extra "
    "(pip install torch --index-url https://download.pytorch.org/whl/cpu, then "
    "pip install -e '.[pytorch]')."
)


@dataclasses.dataclass(frozen=True)
class TensorLayout:
    """How a PyTorch tensor becomes a Keras weight.

    Attributes:
        to_keras: ``(tensor, keras_shape) -> array`` in the Keras layout.
        torch_shape: ``keras_shape -> shape`` the PyTorch tensor must have.
    """

    to_keras: Callable
    torch_shape: Callable


def _same(tensor, keras_shape):
    del keras_shape
    return tensor


def _depthwise_kernel(tensor, keras_shape):
    height, width, channels, multiplier = keras_shape
    return tensor.reshape(channels, multiplier, height, width).transpose(2, 3, 0, 1)


SAME_LAYOUT = TensorLayout(_same, tuple)
# PyTorch's OIHW (I = input channels / groups) to Keras's HWIO, grouped convolutions included:
# both order the output channels group by group.
CONV_KERNEL_LAYOUT = TensorLayout(
    lambda tensor, keras_shape: tensor.transpose(2, 3, 1, 0),
    lambda shape: (shape[3], shape[2], shape[0], shape[1]),
)
# Output channel c * m + j of PyTorch's depthwise (groups = C) convolution reads input channel c,
# as Keras's depthwise kernel (kh, kw, C, m) does.
DEPTHWISE_KERNEL_LAYOUT = TensorLayout(
    _depthwise_kernel, lambda shape: (shape[2] * shape[3], 1, shape[0], shape[1])
)
DENSE_KERNEL_LAYOUT = TensorLayout(
    lambda tensor, keras_shape: tensor.T, lambda shape: (shape[1], shape[0])
)

# PyTorch suffix -> (Keras weight name, layout), per Keras layer type.
_CONV_SLOTS = {"weight": ("kernel", CONV_KERNEL_LAYOUT), "bias": ("bias", SAME_LAYOUT)}
_DEPTHWISE_SLOTS = {"weight": ("kernel", DEPTHWISE_KERNEL_LAYOUT), "bias": ("bias", SAME_LAYOUT)}
_DENSE_SLOTS = {"weight": ("kernel", DENSE_KERNEL_LAYOUT), "bias": ("bias", SAME_LAYOUT)}
_BATCH_NORM_SLOTS = {
    "weight": ("gamma", SAME_LAYOUT),
    "bias": ("beta", SAME_LAYOUT),
    "running_mean": ("moving_mean", SAME_LAYOUT),
    "running_var": ("moving_variance", SAME_LAYOUT),
}
# First match wins: the library's BatchNormalization is a keras.layers.BatchNormalization.
_SLOTS_BY_LAYER_TYPE = (
    (keras.layers.DepthwiseConv2D, _DEPTHWISE_SLOTS),
    (keras.layers.Conv2D, _CONV_SLOTS),
    (keras.layers.Dense, _DENSE_SLOTS),
    (keras.layers.BatchNormalization, _BATCH_NORM_SLOTS),
)


# ------------------------------------------------------------------------------------ reading


def read_pytorch_checkpoint(path, state_key=None):
    """Read a PyTorch checkpoint into ``{tensor name: numpy array}``.

    Accepted: a bare ``state_dict``; a dict holding it under ``"model"`` (RepDistiller's
    ``train_teacher.py``, and the base processor of the released IE-KD code, whose best
    checkpoint is ``model.pth.tar``); any other dict of state_dicts with ``state_key`` naming
    one (the IE-KD, KD, FT and DML processors save ``"teacher"``, ``"student"``, ...).
    DataParallel's ``"module."`` prefixes are removed; floating-point tensors become float32.
    The file is read with ``torch.load(map_location="cpu", weights_only=True)``: tensors and
    plain containers only (plus ``argparse.Namespace``, the options RepDistiller saves in its
    ``*_last.pth``), no pickled code.

    Args:
        path: The ``.pth`` / ``.pth.tar`` file.
        state_key: Key of the state_dict in a checkpoint holding several; None takes a bare
            state_dict or the one under ``"model"``.

    Returns:
        A dict from tensor names (``"layer1.0.conv1.weight"``) to numpy arrays.

    Example:
        >>> state = read_pytorch_checkpoint("resnet32x4_vanilla/ckpt_epoch_240.pth")
        >>> state["fc.weight"].shape
        (100, 256)
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"The PyTorch checkpoint {path!r} does not exist.")
    if os.path.isdir(path):
        raise IsADirectoryError(
            f"The PyTorch checkpoint {path!r} is a directory; expected a .pth file."
        )
    try:
        import torch
    except ImportError as error:
        raise ImportError(_INSTALL_TORCH) from error
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises many kinds for a bad file
        # weights_only refusals open with a long how-to; the reason follows this marker.
        detail = " ".join(str(error).split()).partition(_UNPICKLER_REASON)
        first = (detail[2] or detail[0]).split(". ")[0][:300].rstrip(".")
        raise ValueError(
            f"The file {path!r} is not a PyTorch checkpoint that can be read safely "
            f"(torch.load with weights_only=True says {type(error).__name__}: {first})."
        ) from error
    state = _state_dict_in(checkpoint, path, state_key, torch.Tensor)
    return {
        name: (tensor.float() if tensor.is_floating_point() else tensor).numpy()
        for name, tensor in without_data_parallel_prefix(state).items()
    }


def _is_state_dict(value, tensor_type):
    return (
        isinstance(value, Mapping)
        and len(value) > 0
        and all(
            isinstance(key, str) and isinstance(item, tensor_type) for key, item in value.items()
        )
    )


def _state_dict_in(checkpoint, path, state_key, tensor_type):
    """The state_dict of a loaded checkpoint, chosen by ``state_key`` or the known formats."""
    if not isinstance(checkpoint, Mapping):
        raise ValueError(
            f"The PyTorch checkpoint {path!r} holds a {type(checkpoint).__name__}, not a "
            "state_dict (a dict of tensors) or a dict holding one under 'model'."
        )
    candidates = sorted(
        str(key) for key, value in checkpoint.items() if _is_state_dict(value, tensor_type)
    )
    if state_key is not None:
        if state_key not in checkpoint or not _is_state_dict(checkpoint[state_key], tensor_type):
            holds = ", ".join(map(repr, candidates)) or "none"
            raise ValueError(
                f"The PyTorch checkpoint {path!r} has no state_dict under {state_key!r}; the "
                f"keys holding one are: {holds}."
            )
        return checkpoint[state_key]
    if _is_state_dict(checkpoint, tensor_type):
        return checkpoint
    for key in DEFAULT_STATE_KEYS:
        if key in candidates:
            return checkpoint[key]
    if candidates:
        raise ValueError(
            f"The PyTorch checkpoint {path!r} holds several networks "
            f"({', '.join(map(repr, candidates))}); choose one with state_key "
            "(--state_key for scripts/import_teacher.py)."
        )
    keys = ", ".join(repr(key) for key in list(checkpoint)[:8]) or "nothing"
    raise ValueError(
        f"The PyTorch checkpoint {path!r} holds no state_dict (a dict of tensors), neither "
        f"bare nor under 'model'; its keys are: {keys}."
    )


def without_data_parallel_prefix(state):
    """``state`` without the ``"module."`` that DataParallel puts before every name (only when
    every name has it).

    Example:
        >>> sorted(without_data_parallel_prefix({"module.fc.weight": 1, "module.fc.bias": 2}))
        ['fc.bias', 'fc.weight']
    """
    if state and all(name.startswith(DATA_PARALLEL_PREFIX) for name in state):
        return {name[len(DATA_PARALLEL_PREFIX) :]: value for name, value in state.items()}
    return dict(state)


# ------------------------------------------------------------------------------------ loading


def dotted_path_to_layer_name(module_path):
    """The default Keras layer name of a PyTorch module path: dots become underscores.

    Example:
        >>> dotted_path_to_layer_name("blocks.1.0.conv.3")
        'blocks_1_0_conv_3'
    """
    return module_path.replace(".", "_")


def _as_numpy(value):
    """A numpy array from a numpy array or a torch tensor (read without importing torch)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu()
        if value.is_floating_point():
            value = value.float()
        value = value.numpy()
    return np.asarray(value)


def _model_layers(model):
    """Every layer with weights, by name, nested models opened."""
    layers = {}
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            layers.update(_model_layers(layer))
        elif layer.weights:
            layers[layer.name] = layer
    return layers


def _slots_of(layer):
    for layer_type, slots in _SLOTS_BY_LAYER_TYPE:
        if isinstance(layer, layer_type):
            return slots
    return None


def _weights_by_name(layer):
    return {weight.name: weight for weight in layer.weights}


def _listed(items):
    shown = ", ".join(items[:_LISTED_NAMES])
    more = len(items) - _LISTED_NAMES
    return f"{shown} and {more} more" if more > 0 else shown


def _shape(shape):
    return str(tuple(int(size) for size in shape))


def _target_of(name, layers, keras_layer_name):
    """``(Keras weight, layout)`` that tensor ``name`` fills, or ``(None, why not)``."""
    module_path, _, suffix = name.rpartition(".")
    try:
        layer_name = keras_layer_name(module_path) if module_path else None
    except (KeyError, ValueError):  # a map that refuses paths it does not know
        layer_name = None
    layer = layers.get(layer_name) if layer_name else None
    if layer is None:
        return None, f"no Keras layer {layer_name!r}" if layer_name else "no Keras layer"
    slots = _slots_of(layer)
    if slots is None:
        kind = type(layer).__name__
        return None, f"Keras layer {layer.name!r} is a {kind}, which the import does not convert"
    weights = _weights_by_name(layer)
    weight_name, layout = slots.get(suffix, (None, None))
    if weight_name not in weights:
        takes = "/".join(key for key, (held, _) in slots.items() if held in weights)
        return None, f"Keras layer {layer.name!r} takes {takes}"
    return weights[weight_name], layout


def _plan(model, state, keras_layer_name):
    """``([(Keras weight, converted array)], problems)``: every tensor checked, nothing
    assigned."""
    layers = _model_layers(model)
    assignments, filled, unexpected, misshaped = [], {}, [], []
    for name in sorted(state):
        if name.rpartition(".")[2] in IGNORED_SUFFIXES:
            continue
        weight, layout = _target_of(name, layers, keras_layer_name)
        if weight is None:
            unexpected.append(f"{name!r} ({layout})")
            continue
        if weight.path in filled:
            unexpected.append(f"{name!r} ({weight.path!r} is filled by {filled[weight.path]!r})")
            continue
        filled[weight.path] = name
        tensor = _as_numpy(state[name])
        keras_shape = tuple(weight.shape)
        torch_shape = tuple(layout.torch_shape(keras_shape))
        if tuple(tensor.shape) != torch_shape:
            misshaped.append(
                f"{name!r} is {_shape(tensor.shape)} where Keras weight {weight.path!r} "
                f"{_shape(keras_shape)} needs {_shape(torch_shape)}"
            )
            continue
        array = np.asarray(layout.to_keras(tensor, keras_shape), dtype=weight.dtype)
        assignments.append((weight, array))

    missing = [
        repr(weight.path)
        for layer in layers.values()
        for weight in layer.weights
        if weight.path not in filled
    ]
    problems = []
    if missing:
        problems.append(f"no tensor fills the Keras weights {_listed(missing)}")
    if unexpected:
        problems.append(f"unexpected tensors {_listed(unexpected)}")
    if misshaped:
        problems.append(f"mis-shaped tensors: {_listed(misshaped)}")
    return assignments, problems


def load_pytorch_state(model, state_dict, keras_layer_name=None):
    """Assign a PyTorch ``state_dict`` to a Keras model, converting each tensor.

    Every tensor and every Keras weight is checked before anything is assigned; one
    ``ValueError`` sentence names what does not fit: Keras weights no tensor fills (missing),
    tensors that map to no Keras layer or to no weight of it (unexpected), tensors of the wrong
    shape (theirs and the one needed). Conversions are listed in the module docstring.

    Args:
        model: A built Keras model (e.g. a zoo builder's).
        state_dict: ``{tensor name: numpy array or torch tensor}``, as
            :func:`read_pytorch_checkpoint` or ``torch_module.state_dict()`` returns.
        keras_layer_name: ``module path -> Keras layer name`` (``"layer1.0.conv1"`` ->
            ``"stage1_block1_conv1"``); None for :func:`dotted_path_to_layer_name`.

    Returns:
        The model, its weights assigned.

    Example:
        >>> model = get_model("resnet20", num_classes=100)
        >>> load_pytorch_state(model, torch_net.state_dict(), resnet_layer_name)
    """
    if not isinstance(state_dict, Mapping):
        raise ValueError(
            f"load_pytorch_state expects a state_dict (a mapping from tensor names to tensors); "
            f"got {type(state_dict).__name__}."
        )
    keras_layer_name = keras_layer_name or dotted_path_to_layer_name
    state = without_data_parallel_prefix(state_dict)
    assignments, problems = _plan(model, state, keras_layer_name)
    if problems:
        raise ValueError(
            f"The PyTorch state does not fit the Keras model {model.name!r}: {'; '.join(problems)}."
        )
    for weight, array in assignments:
        weight.assign(array)
    return model


# ------------------------------------------------------------------------------------ zoos


def _zoos():
    """``{zoo name: {arch: ZooEntry}}``, imported when first needed."""
    from iekd_keras.models import iekd_zoo, zoo

    return {"repdistiller": zoo.REPDISTILLER, "iekd": iekd_zoo.IEKD}


def zoo_entry(zoo, arch):
    """The ``ZooEntry(builder, keras_layer_name)`` of ``arch`` (case-insensitive) in ``zoo``.

    Example:
        >>> zoo_entry("repdistiller", "resnet32x4").builder(num_classes=100)
    """
    zoos = _zoos()
    if zoo not in zoos:
        raise ValueError(f"Unknown zoo {zoo!r}; the zoos are: {', '.join(sorted(zoos))}.")
    entries = zoos[zoo]
    by_lower_name = {name.lower(): name for name in entries}
    key = arch.strip().lower() if isinstance(arch, str) else None
    if key not in by_lower_name:
        raise ValueError(
            f"Unknown arch {arch!r} in the {zoo!r} zoo; its archs are: {', '.join(entries)}."
        )
    return entries[by_lower_name[key]]


def import_teacher(zoo, arch, checkpoint, num_classes, input_shape=(32, 32, 3), state_key=None):
    """Build ``arch`` of ``zoo`` and load a PyTorch checkpoint of that network into it.

    Args:
        zoo: ``"repdistiller"`` (RepDistiller's ``models/``, arch names as its ``model_dict``:
            ``"resnet32x4"``, ``"wrn_40_2"``, ``"ResNet50"``, ...) or ``"iekd"`` (the released
            IE-KD code's ``model/``, arch names as the library's registry: ``"resnet56"``,
            ``"resnet56b"``, ``"wrn_40_2"``, ``"mobilenet"``, ...). Arch names are
            case-insensitive.
        arch: The network.
        checkpoint: A ``.pth`` / ``.pth.tar`` path (see :func:`read_pytorch_checkpoint`) or an
            already read state_dict.
        num_classes: The checkpoint's number of classes.
        input_shape: Channels-last ``(height, width, channels)``.
        state_key: For a checkpoint holding several state_dicts, the key of the one to load.

    Returns:
        A functional ``keras.Model`` returning ``[logits, features]`` with the checkpoint's
        weights.

    Example:
        >>> teacher = import_teacher("repdistiller", "resnet32x4", "ckpt_epoch_240.pth", 100)
        >>> teacher.save("resnet32x4.keras")
    """
    entry = zoo_entry(zoo, arch)
    if isinstance(checkpoint, Mapping):
        state = checkpoint
    else:
        state = read_pytorch_checkpoint(checkpoint, state_key=state_key)
    model = entry.builder(num_classes=num_classes, input_shape=tuple(input_shape))
    return load_pytorch_state(model, state, entry.keras_layer_name)
