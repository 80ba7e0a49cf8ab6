"""Dataset sources: the offline digits default, tensorflow-datasets CIFAR, and image folders."""

from pathlib import Path

import numpy as np
import tensorflow as tf

from iekd_keras.data.image_data import ImageData

# Per-dataset normalisation of the released code (feeder.py), on the 0-1 scale.
CIFAR_STATISTICS = {
    "cifar10": ((125.3, 123.0, 113.9), (63.0, 62.1, 66.7)),
    "cifar100": ((129.3, 124.1, 112.4), (68.2, 65.4, 70.4)),
}


def _split(images, labels, test_fraction, seed):
    order = np.random.default_rng(seed).permutation(len(images))
    test_count = int(round(len(images) * test_fraction))
    test, train = order[:test_count], order[test_count:]
    return images[train], labels[train], images[test], labels[test]


def load_digits(image_size=16, test_fraction=0.2, split_seed=0):
    """scikit-learn's 1,797 real 8x8 handwritten digits, shipped inside the package: no download.

    Pixels (0-16) are rescaled to 0-255 and resized bilinearly to `image_size`; one channel.
    The train/test split is a fixed permutation of `split_seed` (default: 1,438 / 359).
    Training augmentation: reflect-pad by image_size // 8 and random crop; no flips (digits are
    not mirror-symmetric).

    Example:
        >>> data = load_digits(16)
        >>> data.input_shape, data.num_classes
        ((16, 16, 1), 10)
    """
    from sklearn.datasets import load_digits as sklearn_digits

    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction={test_fraction!r} must lie strictly between 0 and 1.")
    if image_size < 8:
        raise ValueError(f"image_size={image_size!r} must be at least the digits' native 8.")
    digits = sklearn_digits()
    images = digits.images.astype("float32")[..., None] * (255.0 / 16.0)
    images = tf.image.resize(images, (image_size, image_size), method="bilinear").numpy()
    images = np.clip(images, 0.0, 255.0)
    labels = digits.target.astype("int32")
    train_images, train_labels, test_images, test_labels = _split(
        images, labels, test_fraction, split_seed
    )
    mean = float(train_images.mean() / 255.0)
    std = float(train_images.std() / 255.0)
    return ImageData(
        name="digits",
        train_images=train_images,
        train_labels=train_labels,
        test_images=test_images,
        test_labels=test_labels,
        num_classes=10,
        mean=(mean,),
        std=(std,),
        padding=max(1, image_size // 8),
        flip=False,
    )


def load_cifar(name="cifar10", data_dir=None):
    """CIFAR-10 or CIFAR-100 from tensorflow-datasets, held in memory as uint8 (150 MB).

    Uses the paper's augmentation (reflect-pad 4, random 32x32 crop, horizontal flip) and the
    released code's per-dataset mean and std. Downloads through tensorflow-datasets on first
    use unless `data_dir` already holds the prepared dataset.
    """
    import tensorflow_datasets as tfds

    if name not in CIFAR_STATISTICS:
        raise ValueError(
            f"{name!r} is not a CIFAR dataset; expected one of {list(CIFAR_STATISTICS)}."
        )
    splits = {}
    for split in ("train", "test"):
        dataset = tfds.load(name, split=split, as_supervised=True, data_dir=data_dir)
        # Read in chunks (tfds's batch_size=-1 needs split sizes that mock data lacks).
        chunks = list(tfds.as_numpy(dataset.batch(10_000)))
        images = np.concatenate([chunk[0] for chunk in chunks]).astype("uint8")
        labels = np.concatenate([chunk[1] for chunk in chunks]).astype("int32")
        splits[split] = (images, labels)
    mean, std = CIFAR_STATISTICS[name]
    return ImageData(
        name=name,
        train_images=splits["train"][0],
        train_labels=splits["train"][1],
        test_images=splits["test"][0],
        test_labels=splits["test"][1],
        num_classes=10 if name == "cifar10" else 100,
        mean=tuple(m / 255.0 for m in mean),
        std=tuple(s / 255.0 for s in std),
        padding=4,
        flip=True,
    )


def load_image_folder(directory, image_size, test_fraction=0.2, split_seed=0, padding=4, flip=True):
    """Your own images, one sub-folder per class, through Keras's directory loader (RGB).

    Two layouts: `directory/<class>/<image>` is split train/test by a fixed permutation of
    `split_seed` (`test_fraction` held out); `directory/train/<class>/<image>` beside
    `directory/test/<class>/<image>` gives the two splits as they are (the same class folders
    in both). Classes are numbered in the alphabetical order of their folder names, as
    `keras.utils.image_dataset_from_directory` numbers them. Images are resized to
    `image_size` (aspect ratio not kept) and held in memory; the normalisation statistics are
    measured on the training split.

    Example:
        >>> data = load_image_folder("flowers", image_size=32)  # flowers/roses/*.jpg, ...
        >>> data.num_classes, data.input_shape
        (5, (32, 32, 3))
    """
    root = Path(directory)
    if not root.is_dir():
        what = "is a file" if root.exists() else "does not exist"
        raise ValueError(
            f"The image folder {str(directory)!r} {what}; expected a folder holding one "
            "sub-folder of images per class (or train/ and test/ folders that do)."
        )
    train_folder, test_folder = root / "train", root / "test"
    if train_folder.is_dir() and test_folder.is_dir():
        train_images, train_labels, classes = _read_class_folders(train_folder, image_size)
        test_images, test_labels, test_classes = _read_class_folders(test_folder, image_size)
        if test_classes != classes:
            raise ValueError(
                f"The class folders of {str(test_folder)!r} {test_classes} differ from those "
                f"of {str(train_folder)!r} {classes}; expected the same classes in both."
            )
    else:
        images, labels, classes = _read_class_folders(root, image_size)
        train_images, train_labels, test_images, test_labels = _split(
            images, labels, test_fraction, split_seed
        )
        if not len(test_images) or not len(train_images):
            raise ValueError(
                f"The image folder {str(directory)!r} holds {len(images)} images: too few to "
                f"hold out test_fraction={test_fraction!r} of them and train on the rest."
            )
    return ImageData(
        name=str(directory),
        train_images=train_images,
        train_labels=train_labels,
        test_images=test_images,
        test_labels=test_labels,
        num_classes=len(classes),
        mean=tuple(float(m) for m in train_images.mean(axis=(0, 1, 2)) / 255.0),
        std=tuple(float(s) for s in train_images.std(axis=(0, 1, 2)) / 255.0),
        padding=padding,
        flip=flip,
    )


def _read_class_folders(folder, image_size):
    """(float32 images 0-255, int32 labels, class names) of `folder/<class>/<image>`."""
    import keras

    dataset = keras.utils.image_dataset_from_directory(
        folder, image_size=(image_size, image_size), batch_size=256, shuffle=False
    )
    batches = list(dataset.as_numpy_iterator())
    if not batches:
        raise ValueError(f"No images were found under {str(folder)!r}.")
    images = np.concatenate([batch[0] for batch in batches]).astype("float32")
    labels = np.concatenate([batch[1] for batch in batches]).astype("int32")
    return images, labels, list(dataset.class_names)
