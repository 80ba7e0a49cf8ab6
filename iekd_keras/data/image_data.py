"""An in-memory image dataset and its deterministic tf.data pipelines."""

import dataclasses

import numpy as np
import tensorflow as tf

from iekd_keras.data import common
from iekd_keras.data.augmentation import example_seed, pad_crop_flip


@dataclasses.dataclass(frozen=True)
class ImageData:
    """Raw images (pixel values 0-255, channels-last) and integer labels, split train/test.

    The training pipeline is a pure function of (seed, epoch, example index): the shuffle order
    of epoch e and every crop and flip are the same on every run, so a run resumed at epoch e
    sees exactly the batches an uninterrupted run would have seen.

    Attributes:
        name: dataset name, recorded in results.
        train_images, train_labels, test_images, test_labels: numpy arrays.
        num_classes: number of classes.
        mean, std: per-channel normalisation on the 0-1 scale (docs/method.md#data).
        padding: reflect padding before the random crop (0: no crop).
        flip: random horizontal flips (off for digits and text-like images).

    Example:
        >>> data = load_digits(image_size=16)
        >>> train = data.train_dataset(batch_size=64, seed=0, epochs=10)
        >>> test = data.test_dataset(batch_size=256)
    """

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    num_classes: int
    mean: tuple
    std: tuple
    padding: int = 4
    flip: bool = True

    def __post_init__(self):
        for split in ("train", "test"):
            images, labels = getattr(self, f"{split}_images"), getattr(self, f"{split}_labels")
            if len(images) == 0:
                raise ValueError(f"The {self.name!r} {split} split is empty.")
            if len(images) != len(labels):
                raise ValueError(
                    f"The {self.name!r} {split} split has {len(images)} images but "
                    f"{len(labels)} labels."
                )
            if images.ndim != 4:
                raise ValueError(
                    f"The {self.name!r} {split} images have shape {images.shape}; expected "
                    "(count, height, width, channels)."
                )
            if not np.all(np.isfinite(images)):
                finite_rows = np.isfinite(images.reshape(len(images), -1)).all(axis=1)
                bad = int(np.argmax(~finite_rows))
                raise ValueError(
                    f"The {self.name!r} {split} images hold non-finite values (first at "
                    f"example {bad}); expected finite pixel values 0-255."
                )
            labels = np.asarray(labels)
            if labels.size and (labels.min() < 0 or labels.max() >= self.num_classes):
                bad = int(np.argmax((labels < 0) | (labels >= self.num_classes)))
                raise ValueError(
                    f"The {self.name!r} {split} label {int(labels[bad])} (example {bad}) is "
                    f"out of range for {self.num_classes} classes; expected 0 to "
                    f"{self.num_classes - 1}."
                )
        if len(self.mean) != self.input_shape[-1] or len(self.std) != self.input_shape[-1]:
            raise ValueError(
                f"mean {self.mean} and std {self.std} must have one value per channel "
                f"({self.input_shape[-1]})."
            )

    @property
    def input_shape(self):
        return tuple(int(d) for d in self.train_images.shape[1:])

    @property
    def num_train_examples(self):
        return len(self.train_images)

    def steps_per_epoch(self, batch_size):
        """Batches per training epoch (the last one may be partial, as with drop_last=False)."""
        return common.steps_per_epoch(self.num_train_examples, batch_size)

    def normalize(self, images):
        """Raw 0-255 images to the normalised float32 inputs the models see."""
        return common.normalize(images, self.mean, self.std)

    def train_dataset(
        self, batch_size, seed, epochs, start_epoch=0, with_index=False, augmentation=()
    ):
        """Augmented, shuffled batches for epochs `start_epoch .. epochs - 1`, then the end.

        With `with_index=True` the elements are `((images, indices), labels)`, for methods
        that keep per-example state. `augmentation` holds extra Keras layers applied to each
        raw batch after the crop and flip (see `build_augmentation_layers`); they draw from
        their own seed generators, so unlike the crop and flip they are not replayed exactly
        by a resumed run.
        """
        count = self.num_train_examples
        images = tf.convert_to_tensor(self.train_images)
        labels = tf.convert_to_tensor(self.train_labels.astype("int32"))

        def one_epoch(epoch):
            # The order of epoch e: a stateless permutation drawn from (seed, e).
            order_seed = tf.stack([tf.cast(seed, tf.int64), epoch + 7919])
            order = tf.argsort(tf.random.stateless_uniform([count], seed=order_seed))

            def prepare(index):
                image = pad_crop_flip(
                    tf.cast(tf.gather(images, index), tf.float32),
                    example_seed(seed, epoch, index),
                    self.padding,
                    self.flip,
                )
                return image, tf.gather(labels, index), tf.cast(index, tf.int64)

            def finish(batch, batch_labels, batch_indices):
                for layer in augmentation:
                    batch = layer(batch, training=True)
                batch = self.normalize(batch)
                return ((batch, batch_indices) if with_index else batch), batch_labels

            indices = tf.data.Dataset.from_tensor_slices(order)
            prepared = indices.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            # Batches never straddle two epochs, as with a per-epoch PyTorch loader.
            return prepared.batch(batch_size).map(finish)

        epochs_dataset = tf.data.Dataset.range(start_epoch, epochs)
        return epochs_dataset.flat_map(one_epoch).prefetch(tf.data.AUTOTUNE)

    def test_dataset(self, batch_size):
        """Normalised test batches in a fixed order, without augmentation."""
        return self.evaluation_dataset(batch_size, "test")

    def evaluation_dataset(self, batch_size, split="test"):
        """Normalised batches of `split` ("train" or "test") in a fixed order, unaugmented."""
        common.check_split(split)
        images, labels = getattr(self, f"{split}_images"), getattr(self, f"{split}_labels")
        dataset = tf.data.Dataset.from_tensor_slices((images, labels.astype("int32")))
        return (
            dataset.map(lambda image, label: (self.normalize(image), label))
            .batch(batch_size)
            .prefetch(tf.data.AUTOTUNE)
        )
