"""Your own images: one sub-folder per class, through Keras's directory loader."""

import numpy as np
import pytest
from PIL import Image

from iekd_keras.data import load_image_folder


def test_image_folder(tmp_path):
    rng = np.random.default_rng(0)
    for name, shade in (("cats", 40), ("dogs", 200)):
        (tmp_path / name).mkdir()
        for index in range(5):
            pixels = np.clip(rng.normal(shade, 10, (12, 12, 3)), 0, 255).astype("uint8")
            Image.fromarray(pixels).save(tmp_path / name / f"{index}.png")
    data = load_image_folder(tmp_path, image_size=8, test_fraction=0.2)
    assert data.num_classes == 2 and data.input_shape == (8, 8, 3)
    assert len(data.train_images) == 8 and len(data.test_images) == 2
    # Class 0 ("cats") is dark, class 1 bright: labels follow the folder names.
    brightness = data.train_images.mean(axis=(1, 2, 3))
    assert np.all(brightness[data.train_labels == 0] < 100)
    assert np.all(brightness[data.train_labels == 1] > 150)


def test_empty_folder(tmp_path):
    (tmp_path / "only_class").mkdir()
    with pytest.raises(ValueError, match="No images"):
        load_image_folder(tmp_path, image_size=8)
