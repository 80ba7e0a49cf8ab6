"""Extra augmentation layers from configs: core Keras, the keras-cv extra, and refusals."""

import numpy as np
import pytest

from iekd_keras.data import build_augmentation_layers, load_digits


@pytest.fixture(scope="module")
def digits():
    return load_digits(image_size=16)


def test_keras_cv_grid_mask_masks_training_batches_only(digits):
    pytest.importorskip("keras_cv")
    layers = build_augmentation_layers(
        [{"name": "keras_cv.layers.GridMask", "kwargs": {"ratio_factor": (0.5, 0.5), "seed": 1}}]
    )
    masked, _ = next(iter(digits.train_dataset(256, 0, 1, augmentation=layers)))
    plain, _ = next(iter(digits.train_dataset(256, 0, 1)))
    # GridMask sets raw pixels to 0, i.e. to -mean/std after normalisation.
    floor = -digits.mean[0] / digits.std[0]
    masked_fraction = np.mean(np.isclose(masked.numpy(), floor, atol=1e-5))
    plain_fraction = np.mean(np.isclose(plain.numpy(), floor, atol=1e-5))
    assert masked_fraction > plain_fraction + 0.1
    test_images, _ = next(iter(digits.test_dataset(359)))
    np.testing.assert_allclose(test_images.numpy(), digits.normalize(digits.test_images).numpy())


def test_core_keras_layer_by_name(digits):
    (layer,) = build_augmentation_layers(
        [{"name": "RandomErasing", "kwargs": {"factor": 1.0, "value_range": (0, 255), "seed": 0}}]
    )
    erased, _ = next(iter(digits.train_dataset(64, 0, 1, augmentation=[layer])))
    plain, _ = next(iter(digits.train_dataset(64, 0, 1)))
    assert erased.shape == plain.shape and not np.allclose(erased.numpy(), plain.numpy())


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"name": "MixUp"}, "'MixUp' mixes labels"),
        ({"name": "RandomWobble"}, "keras.layers has no layer 'RandomWobble'"),
        ({"name": "no_such_module.Layer"}, "needs the module 'no_such_module'"),
        ({"name": "RandAugment", "kwarg": {}}, r"unknown keys \['kwarg'\]"),
    ],
)
def test_bad_entries(spec, message):
    with pytest.raises(ValueError, match=message):
        build_augmentation_layers([spec])
