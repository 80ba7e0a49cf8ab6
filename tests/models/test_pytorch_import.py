"""PyTorch checkpoints read in every format, converted by layer type (checked against PyTorch's
own outputs, and shown to fail when a conversion is wrong), and refused by name.

The conversions and refusals run on every backend; reading files does not touch Keras."""

import argparse
import sys

import keras
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from iekd_keras.models import pytorch_import  # noqa: E402
from iekd_keras.models.pytorch_import import (  # noqa: E402
    TensorLayout,
    import_teacher,
    load_pytorch_state,
    read_pytorch_checkpoint,
)
from tests.models.torch_iekd_models import relative_error  # noqa: E402

TOLERANCE = 1e-4


class EveryLayerType(torch.nn.Module):
    """Every conversion of the import: a convolution, a grouped one, a depthwise one with
    multiplier 2, batch norm and a linear head. Both convolution kernels are square (as many
    outputs as inputs per group), so that a transposition the wrong way keeps their shapes."""

    def __init__(self):
        super().__init__()
        self.square = torch.nn.Conv2d(4, 4, 3, padding=1, bias=True)
        self.grouped = torch.nn.Conv2d(4, 2, 3, padding=1, groups=2, bias=False)
        self.depthwise = torch.nn.Conv2d(2, 4, 3, padding=1, groups=2, bias=True)
        self.norm = torch.nn.BatchNorm2d(4)
        self.head = torch.nn.Linear(4, 5)

    def forward(self, x):
        features = torch.relu(self.norm(self.depthwise(self.grouped(self.square(x)))))
        return self.head(features.mean(dim=(2, 3))), features


def every_layer_type_model():
    inputs = keras.Input((6, 6, 4))
    x = keras.layers.Conv2D(4, 3, padding="same", name="square")(inputs)
    x = keras.layers.Conv2D(2, 3, padding="same", groups=2, use_bias=False, name="grouped")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="depthwise")(x)
    x = keras.layers.BatchNormalization(epsilon=1e-5, name="norm")(x)
    features = keras.layers.ReLU(name="features")(x)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(features)
    logits = keras.layers.Dense(5, name="head")(pooled)
    return keras.Model(inputs, [logits, features], name="every_layer_type")


def randomized(network, seed=0):
    """Random weights; batch-norm means and variances both positive and unlike each other, so
    that swapping them changes the outputs without a negative variance."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in network.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            low, high = (1.0, 3.0) if name.endswith("running_var") else (-1.0, 1.0)
            if name.endswith("running_mean"):
                low, high = 0.1, 0.5
            tensor.copy_(low + (high - low) * torch.rand(tensor.shape, generator=generator))
    return network.eval()


@pytest.fixture
def network():
    return randomized(EveryLayerType())


IMAGES = np.random.default_rng(2).normal(size=(2, 6, 6, 4)).astype("float32")


def errors(model, network):
    """Relative errors of logits and features of the Keras model against the PyTorch one."""
    with torch.no_grad():
        logits, features = network(torch.from_numpy(IMAGES.transpose(0, 3, 1, 2).copy()))
    outputs = [np.asarray(output) for output in model(IMAGES, training=False)]
    return (
        relative_error(outputs[0], logits.numpy()),
        relative_error(outputs[1], features.numpy().transpose(0, 2, 3, 1)),
    )


@pytest.mark.backend_agnostic
def test_every_layer_type_gives_the_pytorch_outputs(network):
    model = load_pytorch_state(every_layer_type_model(), network.state_dict())
    logits_error, features_error = errors(model, network)
    assert logits_error < TOLERANCE and features_error < TOLERANCE


@pytest.mark.backend_agnostic
def test_the_state_dict_may_hold_numpy_arrays_and_data_parallel_prefixes(network):
    state = {f"module.{name}": tensor.numpy() for name, tensor in network.state_dict().items()}
    model = load_pytorch_state(every_layer_type_model(), state)
    assert max(errors(model, network)) < TOLERANCE


# Wrong conversions that keep every shape (the kernel is square: 4 -> 4 channels): only the
# equality with PyTorch's outputs can catch them, and it must.
def _wrong_kernel_transpose(monkeypatch):
    hwoi = TensorLayout(
        lambda tensor, keras_shape: tensor.transpose(2, 3, 0, 1),
        pytorch_import.CONV_KERNEL_LAYOUT.torch_shape,
    )
    monkeypatch.setitem(pytorch_import._CONV_SLOTS, "weight", ("kernel", hwoi))


def _swapped_moments(monkeypatch):
    same = pytorch_import.SAME_LAYOUT
    monkeypatch.setitem(pytorch_import._BATCH_NORM_SLOTS, "running_mean", ("moving_variance", same))
    monkeypatch.setitem(pytorch_import._BATCH_NORM_SLOTS, "running_var", ("moving_mean", same))


@pytest.mark.backend_agnostic
@pytest.mark.parametrize("mutation", [_wrong_kernel_transpose, _swapped_moments])
def test_the_equality_check_fails_for_a_wrong_conversion(network, monkeypatch, mutation):
    mutation(monkeypatch)
    model = load_pytorch_state(every_layer_type_model(), network.state_dict())
    assert max(errors(model, network)) > 100 * TOLERANCE


# --------------------------------------------------------------------------------- refusals


def refusal(state):
    model = every_layer_type_model()
    before = [weight.copy() for weight in model.get_weights()]
    with pytest.raises(ValueError) as raised:
        load_pytorch_state(model, state)
    after = model.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True)), "assigned"
    message = str(raised.value)
    assert "\n" not in message and message.endswith(".")
    assert message.startswith("The PyTorch state does not fit the Keras model 'every_layer_type': ")
    return message


@pytest.mark.backend_agnostic
def test_a_missing_tensor_is_named(network):
    state = network.state_dict()
    del state["norm.running_var"]
    assert refusal(state).endswith(": no tensor fills the Keras weights 'norm/moving_variance'.")


@pytest.mark.backend_agnostic
def test_unexpected_tensors_are_named_with_the_reason(network):
    state = network.state_dict()
    state["extra.weight"] = torch.zeros(3)
    state["norm.scale"] = torch.zeros(4)
    state["grouped.bias"] = torch.zeros(2)
    assert refusal(state).endswith(
        ": unexpected tensors 'extra.weight' (no Keras layer 'extra'), "
        "'grouped.bias' (Keras layer 'grouped' takes weight), "
        "'norm.scale' (Keras layer 'norm' takes weight/bias/running_mean/running_var)."
    )


@pytest.mark.backend_agnostic
def test_a_mis_shaped_tensor_is_named_with_both_shapes(network):
    state = network.state_dict()
    state["head.weight"] = torch.zeros(10, 4)
    assert refusal(state).endswith(
        ": mis-shaped tensors: 'head.weight' is (10, 4) where Keras weight 'head/kernel' (4, 5) "
        "needs (5, 4)."
    )


@pytest.mark.backend_agnostic
def test_all_problems_are_told_in_one_sentence(network):
    state = network.state_dict()
    del state["square.bias"]
    state["head.weight"] = torch.zeros(10, 4)
    state["fc.weight"] = torch.zeros(5, 4)
    message = refusal(state)
    assert "no tensor fills the Keras weights 'square/bias'; unexpected tensors 'fc" in message
    assert "; mis-shaped tensors: 'head.weight' is (10, 4)" in message


@pytest.mark.backend_agnostic
def test_a_long_list_is_cut_with_a_count():
    message = refusal({})
    assert message.endswith(
        "no tensor fills the Keras weights 'square/kernel', 'square/bias', 'grouped/kernel', "
        "'depthwise/kernel' and 7 more."
    )


@pytest.mark.backend_agnostic
def test_a_layer_type_the_import_does_not_convert_is_named():
    inputs = keras.Input((4,))
    outputs = keras.layers.LayerNormalization(name="ln")(inputs)
    model = keras.Model(inputs, outputs, name="layer_norm")
    state = {"ln.weight": np.ones(4, "float32"), "ln.bias": np.zeros(4, "float32")}
    with pytest.raises(ValueError, match="is a LayerNormalization, which the import does not"):
        load_pytorch_state(model, state)


@pytest.mark.backend_agnostic
def test_a_state_that_is_not_a_mapping_is_refused():
    with pytest.raises(ValueError, match=r"expects a state_dict .*; got list\."):
        load_pytorch_state(every_layer_type_model(), [np.zeros(3)])


# ------------------------------------------------------------------------------- the formats


def _assert_same_state(read, network):
    expected = network.state_dict()
    assert sorted(read) == sorted(expected)
    for name, tensor in expected.items():
        np.testing.assert_array_equal(read[name], tensor.numpy())


def _optimizer_state(network):
    """The layout of SGD's state_dict with momentum buffers (written out: a first step of
    torch.optim takes seconds to import its compiler)."""
    parameters = list(network.parameters())
    return {
        "state": {
            index: {"momentum_buffer": torch.ones_like(p)} for index, p in enumerate(parameters)
        },
        "param_groups": [{"lr": 0.1, "momentum": 0.9, "params": list(range(len(parameters)))}],
    }


def checkpoint_in(layout, network):
    """What each training code saves, around the network's state_dict."""
    state = network.state_dict()
    if layout == "bare state_dict":
        return state
    if layout == "DataParallel prefixes":
        return {f"module.{name}": tensor for name, tensor in state.items()}
    optimizer = _optimizer_state(network)
    if layout == "RepDistiller best or epoch checkpoint":
        return {
            "epoch": 240,
            "model": state,
            "best_acc": torch.tensor([77.5]),
            "optimizer": optimizer,
        }
    if layout == "RepDistiller last checkpoint (argparse options)":
        options = argparse.Namespace(model="resnet8", lr_decay_epochs=[150, 180, 210])
        return {"opt": options, "model": state, "optimizer": optimizer}
    assert layout == "IE-KD base processor model.pth.tar"
    return {"epoch": 200, "model": state, "optimizer": optimizer, "best_acc": 0.7731}


@pytest.mark.parametrize(
    "layout",
    [
        "bare state_dict",
        "RepDistiller best or epoch checkpoint",
        "RepDistiller last checkpoint (argparse options)",
        "IE-KD base processor model.pth.tar",
        "DataParallel prefixes",
    ],
)
def test_every_checkpoint_format_is_read(network, tmp_path, layout):
    checkpoint = checkpoint_in(layout, network)
    path = tmp_path / "checkpoint.pth.tar"
    torch.save(checkpoint, path)
    _assert_same_state(read_pytorch_checkpoint(path), network)


def iekd_processor_checkpoint(network, path):
    """What the IE-KD processor of the released code saves: several networks."""
    other = randomized(EveryLayerType(), seed=1)
    torch.save(
        {
            "epoch": 10,
            "teacher": network.state_dict(),
            "student": other.state_dict(),
            "embedTI": {"encoder.0.weight": torch.zeros(2, 2)},
            "optimizerT": _optimizer_state(network),
            "inh_index": torch.arange(4),
            "best_acc": 0.5,
        },
        path,
    )


def test_a_checkpoint_of_several_networks_needs_a_state_key(network, tmp_path):
    path = tmp_path / "model.pth.tar"
    iekd_processor_checkpoint(network, path)
    with pytest.raises(ValueError) as raised:
        read_pytorch_checkpoint(path)
    assert str(raised.value) == (
        f"The PyTorch checkpoint {str(path)!r} holds several networks ('embedTI', 'student', "
        "'teacher'); choose one with state_key (--state_key for scripts/import_teacher.py)."
    )
    _assert_same_state(read_pytorch_checkpoint(path, state_key="teacher"), network)
    with pytest.raises(ValueError, match=r"has no state_dict under 'optimizerT'; the keys"):
        read_pytorch_checkpoint(path, state_key="optimizerT")


class Opaque:
    """A class pickled by reference: reading it would run code, so weights_only refuses it."""


@pytest.mark.parametrize(
    "content, expected",
    [
        ("text", r"is not a PyTorch checkpoint that can be read safely \(torch\.load with"),
        ("object", r"safely .*UnpicklingError: Unsupported global: GLOBAL .*\.Opaque was not an"),
        ("list", r"holds a list, not a state_dict"),
        ("no state", r"holds no state_dict .*; its keys are: 'epoch', 'best_acc'\."),
    ],
    ids=["text", "object", "list", "no state"],
)
def test_a_file_that_is_no_checkpoint_is_named(tmp_path, content, expected):
    path = tmp_path / "file.pth"
    if content == "text":
        path.write_text("not a checkpoint\n")
    else:
        value = {
            "object": {"model": Opaque()},
            "list": [torch.zeros(2)],
            "no state": {"epoch": 3, "best_acc": 0.5},
        }[content]
        torch.save(value, path)
    with pytest.raises(ValueError, match=expected) as raised:
        read_pytorch_checkpoint(path)
    assert str(path) in str(raised.value)


def test_a_missing_file_or_a_directory_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"The PyTorch checkpoint '.*nothing\.pth' does"):
        read_pytorch_checkpoint(tmp_path / "nothing.pth")
    with pytest.raises(IsADirectoryError, match=r"is a directory; expected a \.pth file\."):
        read_pytorch_checkpoint(tmp_path)


def test_without_torch_the_extra_to_install_is_named(tmp_path, monkeypatch):
    path = tmp_path / "state.pth"
    path.write_bytes(b"PK")
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match=r"needs torch: install the project's 'pytorch' extra"):
        read_pytorch_checkpoint(path)


# ------------------------------------------------------------------------------- the zoos


def test_an_unknown_zoo_lists_the_zoos():
    expected = r"^Unknown zoo 'timm'; the zoos are: iekd, repdistiller\.$"
    with pytest.raises(ValueError, match=expected):
        import_teacher("timm", "resnet8", {}, num_classes=10)


def test_an_unknown_arch_lists_the_archs_of_its_zoo():
    with pytest.raises(ValueError) as raised:
        import_teacher("iekd", "resnet9", {}, num_classes=10)
    message = str(raised.value)
    assert message.startswith("Unknown arch 'resnet9' in the 'iekd' zoo; its archs are: resnet8, ")
    assert "wrn_40_2" in message and message.endswith("mobilenet.")


def test_arch_names_are_case_insensitive():
    assert pytorch_import.zoo_entry("iekd", "ResNet56B") is pytorch_import.zoo_entry(
        "iekd", "resnet56b"
    )
