"""Your own images: one sub-folder per class, through Keras's directory loader."""

import numpy as np
import pytest
from PIL import Image

from iekd_keras.data import load_image_folder


def write_classes(folder, count, shades=(("cats", 40), ("dogs", 200)), seed=0):
    """`count` noisy 12x12 PNGs per class, each class of one shade."""
    rng = np.random.default_rng(seed)
    for name, shade in shades:
        (folder / name).mkdir(parents=True)
        for index in range(count):
            pixels = np.clip(rng.normal(shade, 10, (12, 12, 3)), 0, 255).astype("uint8")
            Image.fromarray(pixels).save(folder / name / f"{index}.png")


def test_image_folder(tmp_path):
    write_classes(tmp_path, 5)
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


def test_train_and_test_folders_are_the_splits(tmp_path):
    write_classes(tmp_path / "train", 4)
    write_classes(tmp_path / "test", 3, seed=1)
    data = load_image_folder(tmp_path, image_size=8)
    assert data.num_classes == 2
    assert (len(data.train_images), len(data.test_images)) == (8, 6)
    np.testing.assert_array_equal(data.test_labels, [0, 0, 0, 1, 1, 1])
    # The statistics are the training split's.
    assert data.mean[0] == pytest.approx(data.train_images[..., 0].mean() / 255.0, rel=1e-5)


def test_train_and_test_folders_need_the_same_classes(tmp_path):
    write_classes(tmp_path / "train", 2)
    write_classes(tmp_path / "test", 2, shades=(("cats", 40), ("birds", 120)))
    with pytest.raises(
        ValueError,
        match=r"\['birds', 'cats'\] differ from those of .*"
        r"\['cats', 'dogs'\]; expected the same classes in both",
    ):
        load_image_folder(tmp_path, image_size=8)


def test_a_missing_folder_or_too_few_images_is_one_sentence(tmp_path):
    with pytest.raises(ValueError, match="The image folder '.*nowhere' does not exist; expected"):
        load_image_folder(tmp_path / "nowhere", image_size=8)
    write_classes(tmp_path / "one", 1, shades=(("cats", 40),))
    with pytest.raises(ValueError, match="holds 1 images: too few to hold out test_fraction=0.2"):
        load_image_folder(tmp_path / "one", image_size=8)
