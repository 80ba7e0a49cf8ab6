"""RepDistiller's MobileNetV2 (mobile_half), ShuffleV1 and ShuffleV2 against PyTorch renderings
of the reference files (tests/models/torch_mobile_shuffle.py): parameter counts, the shapes of
every output and stage tap, and equal outputs once a random PyTorch state is imported."""

import functools

import keras
import numpy as np
import pytest

from iekd_keras.models import repdistiller_mobilenetv2, repdistiller_shufflenet

BUILDERS = {
    "MobileNetV2": (repdistiller_mobilenetv2.mobilenetv2_half, "repdistiller_mobilenetv2"),
    "ShuffleV1": (repdistiller_shufflenet.shufflenet_v1, "repdistiller_shufflev1"),
    "ShuffleV2": (repdistiller_shufflenet.shufflenet_v2, "repdistiller_shufflev2"),
}
LAYER_NAMES = {
    "MobileNetV2": repdistiller_mobilenetv2.keras_layer_name,
    "ShuffleV1": repdistiller_shufflenet.keras_layer_name,
    "ShuffleV2": repdistiller_shufflenet.keras_layer_name,
}
# (trainable, batch-norm statistics) scalars for 100 classes, as the PyTorch renderings count
# them (parameters; running means and variances).
PARAMETER_COUNTS = {
    "MobileNetV2": (812_836, 18_368),
    "ShuffleV1": (949_258, 23_736),
    "ShuffleV2": (1_355_528, 16_180),
}
STAGE_COUNTS = {"MobileNetV2": 4, "ShuffleV1": 3, "ShuffleV2": 3}
RELATIVE_TOLERANCE = 1e-4


def torch_network(arch, num_classes=100):
    pytest.importorskip("torch")
    from tests.models import torch_mobile_shuffle

    networks = {
        "MobileNetV2": torch_mobile_shuffle.MobileNetV2Half,
        "ShuffleV1": torch_mobile_shuffle.ShuffleV1,
        "ShuffleV2": torch_mobile_shuffle.ShuffleV2,
    }
    return networks[arch](num_classes=num_classes)


@functools.cache
def keras_network_with_taps(arch):
    """The builder's model for 100 classes and one returning ``[logits, features, stage1, ...,
    stageK]``, built once for the tests that read their shapes or assign all their weights."""
    model = BUILDERS[arch][0](num_classes=100)
    stages = [model.get_layer(f"stage{k}").output for k in range(1, STAGE_COUNTS[arch] + 1)]
    return model, keras.Model(model.input, [*model.outputs, *stages])


def images(batch=2, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, 32, 32, 3)).astype("float32")


def channels_last(tensor):
    return np.transpose(tensor.detach().numpy(), (0, 2, 3, 1))


def scalar_count(weights):
    return sum(int(np.prod(w.shape)) for w in weights)


def parameter_counts(model):
    """(trainable, non-trainable) scalars of a Keras model."""
    return scalar_count(model.trainable_weights), scalar_count(model.non_trainable_weights)


@pytest.mark.parametrize("arch", sorted(BUILDERS))
def test_parameter_counts_equal_the_pytorch_rendering(arch):
    model, _ = keras_network_with_taps(arch)
    assert parameter_counts(model) == PARAMETER_COUNTS[arch]
    network = torch_network(arch)
    torch_trainable = sum(p.numel() for p in network.parameters())
    torch_statistics = sum(
        b.numel() for name, b in network.named_buffers() if not name.endswith("tracked")
    )
    assert PARAMETER_COUNTS[arch] == (torch_trainable, torch_statistics)


@pytest.mark.parametrize("arch", sorted(BUILDERS))
def test_outputs_and_stage_taps_have_the_shapes_of_the_is_feat_maps(arch):
    import torch

    network = torch_network(arch).eval()
    with torch.no_grad():
        stage_maps, features, logits = network(torch.zeros(1, 3, 32, 32))
    model, tapped = keras_network_with_taps(arch)
    assert model.name == BUILDERS[arch][1]
    expected = [logits.shape, channels_last(features).shape]
    expected += [channels_last(stage).shape for stage in stage_maps]
    assert [tuple(t.shape[1:]) for t in tapped.outputs] == [tuple(s)[1:] for s in expected]
    assert model.get_layer("avg_pool").input is model.get_layer("features").output


@pytest.mark.parametrize("arch", sorted(BUILDERS))
def test_imported_pytorch_state_gives_equal_outputs(arch):
    import torch

    from iekd_keras.models.pytorch_import import load_pytorch_state
    from tests.models.torch_mobile_shuffle import randomize

    network = randomize(torch_network(arch), seed=1)
    x = images()
    with torch.no_grad():
        stage_maps, features, logits = network(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))
    expected = [logits.numpy(), channels_last(features), *map(channels_last, stage_maps)]
    model, tapped = keras_network_with_taps(arch)
    load_pytorch_state(model, network.state_dict(), LAYER_NAMES[arch])
    outputs = [keras.ops.convert_to_numpy(t) for t in tapped(x, training=False)]
    for name, got, want in zip(tapped.output_names, outputs, expected, strict=True):
        scale = np.abs(want).max()
        error = np.abs(got - want).max() / scale
        print(f"{arch} {name}: max |keras - torch| / max |torch| = {error:.2e}")
        np.testing.assert_allclose(
            got, want, rtol=RELATIVE_TOLERANCE, atol=RELATIVE_TOLERANCE * scale
        )


@pytest.mark.parametrize("arch", sorted(BUILDERS))
def test_one_tensorflow_training_step_reaches_every_weight(arch):
    import tensorflow as tf

    model = BUILDERS[arch][0](num_classes=10)
    statistics_before = [np.array(w) for w in model.non_trainable_weights]
    kernels_before = [np.array(w) for w in model.trainable_weights]
    with tf.GradientTape() as tape:
        logits, _ = model(images(), training=True)
        loss = tf.reduce_mean(
            keras.losses.sparse_categorical_crossentropy(np.array([1, 7]), logits, from_logits=True)
        )
    gradients = tape.gradient(loss, model.trainable_weights)
    dead = [
        w.path
        for w, g in zip(model.trainable_weights, gradients, strict=True)
        if g is None or not np.all(np.isfinite(g)) or not np.any(g)
    ]
    assert not dead, f"no finite, non-zero gradient reaches {dead[:4]}"
    keras.optimizers.SGD(0.1).apply(gradients, model.trainable_weights)
    assert all(
        not np.array_equal(before, w)
        for before, w in zip(kernels_before, model.trainable_weights, strict=True)
    )
    assert all(  # the batch norms' moving statistics moved
        not np.array_equal(before, w)
        for before, w in zip(statistics_before, model.non_trainable_weights, strict=True)
    )


def test_shufflenet_v2_round_trips_through_a_keras_file(tmp_path):
    model = repdistiller_shufflenet.shufflenet_v2(num_classes=10)
    path = tmp_path / "shufflev2.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)  # safe mode: no Lambda layer
    for before, after in zip(model(images()), loaded(images()), strict=True):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(before), keras.ops.convert_to_numpy(after)
        )


@pytest.mark.backend_agnostic
def test_layer_names_are_the_pytorch_module_paths():
    assert repdistiller_mobilenetv2.keras_layer_name("blocks.2.0.conv.3") == "blocks_2_0_conv_3"
    assert repdistiller_mobilenetv2.keras_layer_name("conv1.1") == "conv1_1"
    assert repdistiller_mobilenetv2.keras_layer_name("classifier.0") == "logits"
    assert repdistiller_shufflenet.keras_layer_name("layer2.0.conv3") == "layer2_0_conv3"
    assert repdistiller_shufflenet.keras_layer_name("bn1") == "bn1"
    assert repdistiller_shufflenet.keras_layer_name("linear") == "logits"


@pytest.mark.backend_agnostic
@pytest.mark.parametrize("arch", sorted(BUILDERS))
def test_bad_num_classes_is_refused_by_name(arch):
    with pytest.raises(ValueError, match="num_classes must be a positive integer; got 0"):
        BUILDERS[arch][0](num_classes=0)
