"""RepDistiller's ResNets, ResNet50, wide ResNets and VGGs in the zoo, against PyTorch.

Each network is built once, in one test, and checked for: parameter counts (golden values, read
from the PyTorch renderings of ``tests/models/torch_resnet_vgg.py``, which equal RepDistiller's
modules), the shapes of ``features`` and of the stage taps (RepDistiller's ``is_feat`` maps), its
initializers, and, where torch is installed, equal logits, features and stage maps with the
rendering once its randomised ``state_dict`` is loaded through the network's
``keras_layer_name``.
"""

import re

import keras
import numpy as np
import pytest

from iekd_keras.models import ZOO, with_taps
from iekd_keras.models.pytorch_import import load_pytorch_state
from iekd_keras.models.repdistiller_resnet import keras_layer_name as resnet_layer_name
from iekd_keras.models.repdistiller_vgg import keras_layer_name as vgg_layer_name
from iekd_keras.models.repdistiller_wrn import keras_layer_name as wrn_layer_name
from iekd_keras.models.zoo import REPDISTILLER, find_zoo_entry, zoo_names

# RepDistiller's models/__init__.py model_dict, in its order.
MODEL_DICT_KEYS = (
    "resnet8 resnet14 resnet20 resnet32 resnet44 resnet56 resnet110 resnet8x4 resnet32x4 "
    "ResNet50 wrn_16_1 wrn_16_2 wrn_40_1 wrn_40_2 vgg8 vgg11 vgg13 vgg16 vgg19 MobileNetV2 "
    "ShuffleV1 ShuffleV2"
).split()
NUM_CLASSES = 100


def _resnet_stages(widths):
    return [(32, 32, widths[0]), (16, 16, widths[1]), (8, 8, widths[2])]


_VGG_STAGES = [(16, 16, 128), (8, 8, 256), (4, 4, 512), (4, 4, 512)]
# arch: (trainable parameters, batch-norm running statistics, stage maps f1..fK (H, W, C) for a
# 32x32 input, features (H, W, C)); the counts are the PyTorch renderings' for 100 classes.
EXPECTED = {
    "resnet8": (83_892, 672, _resnet_stages((16, 32, 64)), (8, 8, 64)),
    "resnet14": (181_108, 1_120, _resnet_stages((16, 32, 64)), (8, 8, 64)),
    "resnet20": (278_324, 1_568, _resnet_stages((16, 32, 64)), (8, 8, 64)),
    "resnet32": (472_756, 2_464, _resnet_stages((16, 32, 64)), (8, 8, 64)),
    "resnet44": (667_188, 3_360, _resnet_stages((16, 32, 64)), (8, 8, 64)),
    "resnet56": (861_620, 4_256, _resnet_stages((16, 32, 64)), (8, 8, 64)),
    "resnet110": (1_736_564, 8_288, _resnet_stages((16, 32, 64)), (8, 8, 64)),
    "resnet8x4": (1_233_540, 2_752, _resnet_stages((64, 128, 256)), (8, 8, 256)),
    "resnet32x4": (7_433_860, 9_920, _resnet_stages((64, 128, 256)), (8, 8, 256)),
    "ResNet50": (
        23_705_252,
        53_120,
        [(32, 32, 256), (16, 16, 512), (8, 8, 1024), (4, 4, 2048)],
        (4, 4, 2048),
    ),
    "wrn_16_1": (180_916, 928, _resnet_stages((16, 32, 64)), (8, 8, 64)),
    "wrn_16_2": (703_284, 1_824, _resnet_stages((32, 64, 128)), (8, 8, 128)),
    "wrn_40_1": (569_780, 2_720, _resnet_stages((16, 32, 64)), (8, 8, 64)),
    "wrn_40_2": (2_255_156, 5_408, _resnet_stages((32, 64, 128)), (8, 8, 128)),
    "vgg8": (3_965_028, 2_944, _VGG_STAGES, (4, 4, 512)),
    "vgg11": (9_277_284, 5_504, _VGG_STAGES, (4, 4, 512)),
    "vgg13": (9_462_180, 5_888, _VGG_STAGES, (4, 4, 512)),
    "vgg16": (14_774_436, 8_448, _VGG_STAGES, (4, 4, 512)),
    "vgg19": (20_086_692, 11_008, _VGG_STAGES, (4, 4, 512)),
}
ARCHS = tuple(EXPECTED)
# Relative agreement asked of the Keras networks and their PyTorch renderings (float32).
RTOL = 1e-4


def counts(model):
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    statistics = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    return trainable, statistics


def images(size=32, batch=2, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, size, size, 3)).astype("float32")


def stage_names(arch):
    return [f"stage{k}" for k in range(1, len(EXPECTED[arch][2]) + 1)]


def max_relative_error(actual, expected):
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


def assert_close(actual, expected, label):
    """Equal within RTOL of each value, or of the map's largest value for values near 0."""
    scale = np.abs(expected).max()
    assert scale > 0, f"{label}: the reference is all zeros"
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=RTOL * 0.1 * scale, err_msg=label)


def compare_with_rendering(arch, model, size=32, seed=0):
    """Load a randomised rendering of ``arch`` into ``model``; assert equal outputs; return the
    max relative errors ``{output: error}``."""
    torch = pytest.importorskip("torch")
    from tests.models import torch_resnet_vgg

    network = torch_resnet_vgg.randomize(torch_resnet_vgg.build(arch, NUM_CLASSES), seed)
    load_pytorch_state(model, network.state_dict(), REPDISTILLER[arch].keras_layer_name)
    x = images(size)
    with torch.no_grad():
        maps, features, logits = network(torch.from_numpy(x.transpose(0, 3, 1, 2)))
    expected = {"logits": logits.numpy(), "features": features.numpy().transpose(0, 2, 3, 1)}
    for name, stage_map in zip(stage_names(arch), maps, strict=True):
        expected[name] = stage_map.numpy().transpose(0, 2, 3, 1)
    tapped = with_taps(model, stage_names(arch))
    outputs = tapped(x, training=False)
    errors = {}
    for name, actual in zip(tapped.output_names, outputs, strict=True):
        actual = keras.ops.convert_to_numpy(actual)
        assert actual.shape == expected[name].shape, f"{arch} {name}"
        assert_close(actual, expected[name], f"{arch} {name}")
        errors[name] = max_relative_error(actual, expected[name])
    return errors


# ------------------------------------------------------------------------------ the table


@pytest.mark.backend_agnostic
def test_the_table_holds_repdistillers_model_dict_in_its_order():
    assert list(REPDISTILLER) == MODEL_DICT_KEYS
    assert ZOO["repdistiller"] is REPDISTILLER
    assert zoo_names() == tuple(f"repdistiller/{arch}" for arch in MODEL_DICT_KEYS)
    for entry in REPDISTILLER.values():
        assert callable(entry.builder) and callable(entry.keras_layer_name)


@pytest.mark.backend_agnostic
def test_zoo_names_are_found_whatever_their_case():
    zoo, arch, entry = find_zoo_entry(" RepDistiller/RESNET50 ")
    assert (zoo, arch) == ("repdistiller", "ResNet50")
    assert entry is REPDISTILLER["ResNet50"]
    assert find_zoo_entry("repdistiller/shufflev2")[1] == "ShuffleV2"
    assert find_zoo_entry("repdistiller/resnet33") is None
    assert find_zoo_entry("torchvision/resnet50") is None


# -------------------------------------------------------------------- the PyTorch maps

MAPPED_PATHS = [
    # (map, PyTorch module path, Keras layer)
    (resnet_layer_name, "conv1", "stem_conv"),
    (resnet_layer_name, "bn1", "stem_bn"),
    (resnet_layer_name, "layer3.4.bn2", "stage3_block5_bn2"),
    (resnet_layer_name, "layer1.0.downsample.0", "stage1_block1_shortcut_conv"),
    (resnet_layer_name, "layer2.0.downsample.1", "stage2_block1_shortcut_bn"),
    (resnet_layer_name, "layer4.2.conv3", "stage4_block3_conv3"),  # models/resnetv2.py
    (resnet_layer_name, "layer2.0.shortcut.0", "stage2_block1_shortcut_conv"),
    (resnet_layer_name, "fc", "logits"),
    (resnet_layer_name, "linear", "logits"),
    (wrn_layer_name, "conv1", "stem_conv"),
    (wrn_layer_name, "block1.layer.0.bn1", "group1_block1_bn1"),
    (wrn_layer_name, "block3.layer.5.conv2", "group3_block6_conv2"),
    (wrn_layer_name, "block2.layer.0.convShortcut", "group2_block1_shortcut"),
    (wrn_layer_name, "bn1", "final_bn"),
    (wrn_layer_name, "fc", "logits"),
    (vgg_layer_name, "block0.0", "block0_conv1"),
    (vgg_layer_name, "block0.1", "block0_bn1"),
    (vgg_layer_name, "block2.4", "block2_bn2"),
    (vgg_layer_name, "block4.9", "block4_conv4"),
    (vgg_layer_name, "classifier", "logits"),
]
UNMAPPED_PATHS = [
    (resnet_layer_name, "layer1.0.relu"),
    (resnet_layer_name, "avgpool"),
    (wrn_layer_name, "block1.layer.0.relu1"),
    (vgg_layer_name, "block1.2"),  # a ReLU: no tensors
    (vgg_layer_name, "block5.0"),
]


@pytest.mark.backend_agnostic
def test_maps_name_the_keras_layer_of_each_reference_module():
    for layer_name, torch_path, keras_name in MAPPED_PATHS:
        assert layer_name(torch_path) == keras_name, torch_path


@pytest.mark.backend_agnostic
def test_maps_refuse_paths_without_a_layer_by_name():
    for layer_name, torch_path in UNMAPPED_PATHS:
        with pytest.raises(ValueError, match=f"'{torch_path}' is not a module"):
            layer_name(torch_path)


# --------------------------------------------------------------------- every network


def initializer_spec(initializer):
    """``(class name, the config values that set the distribution)``."""
    config = initializer.get_config()
    keys = ("scale", "mode", "distribution", "mean", "stddev", "minval", "maxval")
    return type(initializer).__name__, {k: config[k] for k in keys if k in config}


FAN_OUT_NORMAL = (
    "VarianceScaling",
    {"scale": 2.0, "mode": "fan_out", "distribution": "untruncated_normal"},
)
LINEAR_DEFAULT_KERNEL = (
    "VarianceScaling",
    {"scale": 1.0 / 3.0, "mode": "fan_in", "distribution": "uniform"},
)
ZEROS = ("Zeros", {})


def assert_reference_initializers(arch, model):
    convs = [layer for layer in model.layers if type(layer) is keras.layers.Conv2D]
    assert convs and all(initializer_spec(c.kernel_initializer) == FAN_OUT_NORMAL for c in convs)
    # Convolution biases: only VGG's, zero.
    with_bias = [c for c in convs if c.use_bias]
    assert bool(with_bias) == arch.startswith("vgg")
    assert all(initializer_spec(c.bias_initializer) == ZEROS for c in with_bias)
    dense = model.get_layer("logits")
    kernel = initializer_spec(dense.kernel_initializer)
    bias = initializer_spec(dense.bias_initializer)
    if arch.startswith("vgg"):  # N(0, 0.01), zero bias
        assert kernel == ("RandomNormal", {"mean": 0.0, "stddev": 0.01}) and bias == ZEROS
    elif arch.startswith("wrn"):  # nn.Linear's kernel, zero bias
        assert kernel == LINEAR_DEFAULT_KERNEL and bias == ZEROS
    else:  # nn.Linear's default kernel and bias
        bound = 1.0 / np.sqrt(dense.kernel.shape[0])
        assert kernel == LINEAR_DEFAULT_KERNEL
        uniform = {"minval": pytest.approx(-bound), "maxval": pytest.approx(bound)}
        assert bias == ("RandomUniform", uniform)


@pytest.mark.parametrize("arch", ARCHS)
def test_network_is_repdistillers_layer_for_layer(arch):
    """Golden parameter counts, output and stage-tap shapes and initializers; with torch, equal
    outputs with the PyTorch rendering whose randomised state_dict it loads (one build each:
    the checks share it)."""
    model = REPDISTILLER[arch].builder(num_classes=NUM_CLASSES)
    trainable, statistics, stage_shapes, feature_shape = EXPECTED[arch]
    assert counts(model) == (trainable, statistics)
    assert model.name == f"repdistiller_{arch.lower()}"
    assert model.output_names == ["logits", "features"]
    assert tuple(model.outputs[0].shape) == (None, NUM_CLASSES)
    assert tuple(model.outputs[1].shape) == (None, *feature_shape)
    taps = [layer for layer in model.layers if re.fullmatch(r"stage\d+", layer.name)]
    assert [layer.name for layer in taps] == stage_names(arch)
    assert [tuple(layer.output.shape[1:]) for layer in taps] == stage_shapes
    assert all(not layer.weights for layer in taps)
    assert_reference_initializers(arch, model)

    errors = compare_with_rendering(arch, model)
    print(f"{arch}: max relative error " + ", ".join(f"{k} {v:.1e}" for k, v in errors.items()))


# ------------------------------------------------------------------------------- VGG


@pytest.mark.backend_agnostic
def test_vgg_pools_before_block4_only_for_64_pixel_images_as_repdistiller():
    small = REPDISTILLER["vgg8"].builder(num_classes=NUM_CLASSES)
    assert "pool3" not in [layer.name for layer in small.layers]
    large = REPDISTILLER["vgg8"].builder(num_classes=NUM_CLASSES, input_shape=(64, 64, 3))
    # 64 -> 32 (pool0) -> 16 (pool1) -> 8 (pool2): block 3 at 8x8, block 4 at 4x4 after pool3.
    assert tuple(large.get_layer("stage3").output.shape) == (None, 8, 8, 512)
    assert tuple(large.get_layer("pool3").output.shape) == (None, 4, 4, 512)
    assert tuple(large.outputs[1].shape) == (None, 4, 4, 512)
    errors = compare_with_rendering("vgg8", large, size=64, seed=1)
    assert max(errors.values()) < RTOL


@pytest.mark.backend_agnostic
def test_vgg_refuses_an_input_of_unknown_height():
    with pytest.raises(ValueError, match=r"vgg11: input_shape must fix the image height.*None"):
        REPDISTILLER["vgg11"].builder(input_shape=(None, None, 3))


def test_a_zoo_network_saves_and_loads_in_safe_mode(tmp_path):
    model = REPDISTILLER["resnet8x4"].builder(num_classes=10)
    path = tmp_path / "resnet8x4.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    x = images()
    for expected, actual in zip(model(x), loaded(x), strict=True):
        np.testing.assert_array_equal(np.asarray(actual), np.asarray(expected))
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
