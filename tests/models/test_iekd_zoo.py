"""The ``iekd`` zoo: the released IE-KD code's checkpoints give the library's networks the
PyTorch networks' outputs."""

import numpy as np
import pytest

from iekd_keras.models import iekd_zoo
from iekd_keras.models.registry import available_models

# Largest relative error of logits and features allowed between Keras and PyTorch (float32).
TOLERANCE = 1e-4

# (map, released module path, library layer).
GOLDEN_NAMES = [
    (iekd_zoo.resnet_layer_name, "conv1", "stem_conv"),
    (iekd_zoo.resnet_layer_name, "bn1", "stem_bn"),
    (iekd_zoo.resnet_layer_name, "layer1.0.conv1", "stage1_block1_conv1"),
    (iekd_zoo.resnet_layer_name, "layer3.17.bn2", "stage3_block18_bn2"),
    (iekd_zoo.resnet_layer_name, "layer2.0.shortcut.0", "stage2_block1_shortcut_conv"),
    (iekd_zoo.resnet_layer_name, "layer2.0.shortcut.1", "stage2_block1_shortcut_bn"),
    (iekd_zoo.resnet_layer_name, "linear", "logits"),
    (iekd_zoo.wide_resnet_layer_name, "conv1", "stem_conv"),
    (iekd_zoo.wide_resnet_layer_name, "block1.layer.1.bn2", "group1_block2_bn2"),
    (iekd_zoo.wide_resnet_layer_name, "block3.layer.0.convShortcut", "group3_block1_shortcut"),
    (iekd_zoo.wide_resnet_layer_name, "bn1", "final_bn"),
    (iekd_zoo.wide_resnet_layer_name, "fc", "logits"),
    (iekd_zoo.mobilenet_layer_name, "bn1", "stem_bn"),
    (iekd_zoo.mobilenet_layer_name, "layers.0.conv1", "block1_depthwise"),
    (iekd_zoo.mobilenet_layer_name, "layers.12.bn2", "block13_pointwise_bn"),
    (iekd_zoo.mobilenet_layer_name, "linear", "logits"),
]


@pytest.mark.backend_agnostic
def test_module_paths_map_to_the_library_layers():
    mapped = [(path, layer_name(path)) for layer_name, path, _ in GOLDEN_NAMES]
    assert mapped == [(path, expected) for _, path, expected in GOLDEN_NAMES]


@pytest.mark.backend_agnostic
def test_an_unknown_module_path_is_refused_by_name():
    with pytest.raises(
        ValueError, match=r"'layer1\.0\.conv3' is not a module path of the released"
    ):
        iekd_zoo.resnet_layer_name("layer1.0.conv3")


@pytest.mark.backend_agnostic
def test_every_arch_is_a_registry_name():
    patterns = {name for name in available_models() if "{" not in name}
    for arch in iekd_zoo.IEKD:
        assert arch in patterns or arch.startswith("wrn_"), arch


# One network per family of the released model/ directory, at small depths.
@pytest.mark.parametrize("arch", ["resnet8", "resnet20b", "wrn_16_2", "mobilenet"])
def test_imported_network_equals_the_pytorch_network(arch):
    torch = pytest.importorskip("torch")
    from iekd_keras.models.pytorch_import import import_teacher
    from tests.models import torch_iekd_models

    torch.manual_seed(0)
    network = torch_iekd_models.randomize(torch_iekd_models.build(arch, num_classes=10))
    images = np.random.default_rng(1).normal(size=(2, 32, 32, 3)).astype("float32")

    model = import_teacher("iekd", arch, network.state_dict(), num_classes=10)
    logits, features = (np.asarray(output) for output in model(images, training=False))
    expected_logits, expected_features = torch_iekd_models.torch_outputs(network, images)

    assert logits.shape == expected_logits.shape
    assert features.shape == expected_features.shape
    logits_error = torch_iekd_models.relative_error(logits, expected_logits)
    features_error = torch_iekd_models.relative_error(features, expected_features)
    assert logits_error < TOLERANCE, f"{arch}: logits relative error {logits_error:.2e}"
    assert features_error < TOLERANCE, f"{arch}: features relative error {features_error:.2e}"
