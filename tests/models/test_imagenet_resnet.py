import keras
import numpy as np
import pytest

from iekd_keras.models import available_models, get_model, imagenet_resnet


def trainable_count(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_weights)


def resnet_formula(stage_blocks, num_classes):
    """Trainable parameters of the torchvision basic-block ResNet, written out layer by layer."""
    total = 7 * 7 * 3 * 64 + 2 * 64  # stem conv (no bias) + BN gamma/beta
    in_planes = 64
    for planes, num_blocks in zip((64, 128, 256, 512), stage_blocks, strict=True):
        for _ in range(num_blocks):
            total += 3 * 3 * in_planes * planes + 2 * planes  # conv1 + bn1
            total += 3 * 3 * planes * planes + 2 * planes  # conv2 + bn2
            if in_planes != planes:
                total += in_planes * planes + 2 * planes  # 1x1 projection + BN
            in_planes = planes
    return total + 512 * num_classes + num_classes  # dense


def images(batch=2, size=64, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, size, size, 3)).astype("float32")


def test_resnet18_has_exactly_torchvision_trainable_parameter_count():
    assert trainable_count(imagenet_resnet(18)) == 11_689_512


def test_resnet34_has_exactly_torchvision_trainable_parameter_count():
    assert trainable_count(imagenet_resnet(34)) == 21_797_672


def test_formula_reproduces_torchvision_counts_and_other_class_counts():
    assert resnet_formula((2, 2, 2, 2), 1000) == 11_689_512
    assert resnet_formula((3, 4, 6, 3), 1000) == 21_797_672
    model = imagenet_resnet(18, num_classes=10, input_shape=(32, 32, 3))
    assert trainable_count(model) == resnet_formula((2, 2, 2, 2), 10)


def test_spatial_sizes_at_224_match_pytorch_padding():
    model = imagenet_resnet(18)
    assert model.name == "resnet18"
    assert tuple(model.get_layer("stem_conv").output.shape) == (None, 112, 112, 64)
    assert tuple(model.get_layer("stem_pool").output.shape) == (None, 56, 56, 64)
    assert tuple(model.get_layer("stage1_block2_relu2").output.shape) == (None, 56, 56, 64)
    assert tuple(model.get_layer("stage2_block2_relu2").output.shape) == (None, 28, 28, 128)
    assert tuple(model.get_layer("stage3_block2_relu2").output.shape) == (None, 14, 14, 256)
    assert tuple(model.get_layer("features").output.shape) == (None, 7, 7, 512)
    assert tuple(model.outputs[0].shape) == (None, 1000)


@pytest.mark.parametrize("depth", [18, 34])
def test_outputs_are_logits_and_2x2x512_features_at_64x64(depth):
    model = imagenet_resnet(depth, num_classes=7, input_shape=(64, 64, 3))
    assert model.name == f"resnet{depth}"
    assert model.inputs[0].name == "images"
    logits, features = model(images(batch=3))
    assert tuple(logits.shape) == (3, 7)
    assert tuple(features.shape) == (3, 2, 2, 512)
    assert len(model.outputs) == 2
    assert model.get_layer("features").output is model.outputs[1]


def test_features_are_the_map_fed_to_global_average_pooling():
    model = imagenet_resnet(18, num_classes=5, input_shape=(64, 64, 3))
    assert model.get_layer("avg_pool").input is model.get_layer("features").output
    logits, features = (np.asarray(t) for t in model(images(), training=False))
    kernel, bias = model.get_layer("logits").get_weights()
    expected = features.mean(axis=(1, 2)) @ kernel + bias
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-5)
    assert (features >= 0).all()  # taken after the final ReLU


def test_stem_conv_and_max_pool_pad_symmetrically_like_pytorch():
    model = imagenet_resnet(18, input_shape=(32, 32, 3))
    conv = model.get_layer("stem_conv")
    probe = keras.Model(
        model.input,
        [conv.output, model.get_layer("stem_relu").output, model.get_layer("stem_pool").output],
    )
    x = images(size=32)
    conv_out, relu_out, pool_out = (np.asarray(t) for t in probe(x, training=False))
    assert conv_out.shape[1:3] == (16, 16) and pool_out.shape[1:3] == (8, 8)
    # Padding 3 on every side: the stride-2 result is the stride-1 "same" result at even positions.
    dense = keras.ops.conv(x, conv.kernel, strides=1, padding="same")
    np.testing.assert_allclose(conv_out, np.asarray(dense)[:, ::2, ::2, :], rtol=1e-4, atol=1e-4)
    # Padding 1 on every side: the stride-1 "same" max-pool (which ignores the padding) sampled
    # at even positions; zero padding is equivalent to -inf here because the input is a ReLU.
    pooled = keras.ops.max_pool(relu_out, pool_size=3, strides=1, padding="same")
    np.testing.assert_array_equal(pool_out, np.asarray(pooled)[:, ::2, ::2, :])


def test_stride_two_block_conv_pads_one_pixel_on_every_side_like_pytorch():
    model = imagenet_resnet(18, input_shape=(32, 32, 3))
    conv = model.get_layer("stage2_block1_conv1")
    block_input = model.get_layer("stage1_block2_relu2").output
    probe = keras.Model(model.input, [block_input, conv.output])
    x_in, x_out = (np.asarray(t) for t in probe(images(size=32), training=False))
    dense = keras.ops.conv(x_in, conv.kernel, strides=1, padding="same")
    np.testing.assert_allclose(x_out, np.asarray(dense)[:, ::2, ::2, :], rtol=1e-4, atol=1e-5)


def test_projection_shortcuts_only_in_first_block_of_stages_2_to_4():
    model = imagenet_resnet(34, input_shape=(32, 32, 3))
    shortcut_convs = sorted(
        layer.name for layer in model.layers if layer.name.endswith("_shortcut_conv")
    )
    assert shortcut_convs == [f"stage{s}_block1_shortcut_conv" for s in (2, 3, 4)]
    for stage in (2, 3, 4):
        conv = model.get_layer(f"stage{stage}_block1_shortcut_conv")
        assert conv.kernel_size == (1, 1) and conv.strides == (2, 2) and not conv.use_bias
        bn = model.get_layer(f"stage{stage}_block1_shortcut_bn")
        assert isinstance(bn, keras.layers.BatchNormalization)
    stem = model.get_layer("stem_conv")
    assert stem.kernel_size == (7, 7) and stem.strides == (2, 2) and stem.padding == "valid"
    pool = model.get_layer("stem_pool")
    assert pool.pool_size == (3, 3) and pool.strides == (2, 2) and pool.padding == "valid"
    blocks_per_stage = [
        len(
            {
                layer.name.split("_")[1]
                for layer in model.layers
                if layer.name.startswith(f"stage{s}_")
            }
        )
        for s in (1, 2, 3, 4)
    ]
    assert blocks_per_stage == [3, 4, 6, 3]


def test_batch_norm_and_initializer_settings_match_pytorch():
    model = imagenet_resnet(18, num_classes=10, input_shape=(32, 32, 3))
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and all(bn.momentum == 0.9 and bn.epsilon == 1e-5 for bn in norms)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert all(not conv.use_bias for conv in convs)
    kernel = np.asarray(model.get_layer("stage4_block1_conv2").kernel)
    assert kernel.std() == pytest.approx(np.sqrt(2.0 / (9 * 512)), rel=0.05)
    bias = np.asarray(model.get_layer("logits").bias)
    assert np.abs(bias).max() <= 1.0 / np.sqrt(512) and np.abs(bias).max() > 0


@pytest.mark.parametrize("depth", [50, 20, 0, "18", True])
def test_invalid_depth_names_value_and_valid_depths(depth):
    with pytest.raises(ValueError, match=r"depth") as info:
        imagenet_resnet(depth)
    message = str(info.value)
    assert f"depth={depth!r}" in message
    assert "18, 34" in message


def test_registry_builds_resnet18_and_resnet34():
    names = available_models()
    assert "resnet18" in names and "resnet34" in names
    model = get_model("ResNet18", num_classes=7, input_shape=(64, 64, 3))
    assert model.name == "resnet18"
    assert tuple(model.outputs[0].shape) == (None, 7)
    assert tuple(model.outputs[1].shape) == (None, 2, 2, 512)
    model = get_model("resnet34", num_classes=1000, input_shape=(224, 224, 3), name="teacher")
    assert model.name == "teacher"
    assert trainable_count(model) == 21_797_672
    assert tuple(model.outputs[1].shape) == (None, 7, 7, 512)


def test_registry_rejects_unknown_imagenet_depth_and_suggests_closest():
    with pytest.raises(ValueError, match="Did you mean 'resnet18'") as info:
        get_model("resnet17")
    assert "resnet34" in str(info.value)
    with pytest.raises(ValueError, match="Unknown model name 'resnet50'"):
        get_model("resnet50")
