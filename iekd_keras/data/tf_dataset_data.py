"""Any pair of tf.data datasets of (image, label) examples, as a training dataset."""

import dataclasses

import tensorflow as tf

from iekd_keras.data import common


@dataclasses.dataclass(frozen=True)
class TfDatasetData:
    """Wraps user `tf.data.Dataset`s of single `(image, label)` examples (raw 0-255 pixels).

    The training set is shuffled per epoch with a buffer seeded by (seed, epoch) and batched
    without crossing epochs; `augmentation` layers run on raw batches before normalisation. Unlike
    `ImageData` there is no per-example crop and flip: put the augmentation you want in the
    dataset itself or in `augmentation`. Exact replay on resume holds only when the given dataset
    yields the same order every time.

    Args:
        train, test: unbatched datasets of (image, integer label).
        num_classes: number of classes.
        mean, std: per-channel normalisation on the 0-1 scale.
        num_train_examples: size of `train` (counted once when None).
        shuffle_buffer: shuffle buffer size (default: the whole training set).
        name: recorded in results.

    Example:
        >>> data = TfDatasetData(train_ds, test_ds, num_classes=5, mean=(0.5,), std=(0.25,))
        >>> train_and_evaluate(config, "runs/mine", data=data)
    """

    train: tf.data.Dataset
    test: tf.data.Dataset
    num_classes: int
    mean: tuple
    std: tuple
    num_train_examples: int | None = None
    shuffle_buffer: int | None = None
    name: str = "tf.data"

    def __post_init__(self):
        spec = self.train.element_spec
        if not isinstance(spec, tuple) or len(spec) != 2 or len(spec[0].shape) != 3:
            raise ValueError(
                f"The training dataset yields {spec}; expected single (image, label) examples "
                "with images of shape (height, width, channels): unbatch it first."
            )
        if self.num_train_examples is None:
            count = int(self.train.reduce(0, lambda total, _: total + 1))
            object.__setattr__(self, "num_train_examples", count)
        if self.num_train_examples == 0:
            raise ValueError(f"The {self.name!r} training dataset is empty.")

    @property
    def input_shape(self):
        return tuple(int(d) for d in self.train.element_spec[0].shape)

    def steps_per_epoch(self, batch_size):
        return common.steps_per_epoch(self.num_train_examples, batch_size)

    def normalize(self, images):
        return common.normalize(images, self.mean, self.std)

    def train_dataset(self, batch_size, seed, epochs, start_epoch=0, augmentation=()):
        buffer = self.shuffle_buffer or self.num_train_examples

        def finish(images, labels):
            images = tf.cast(images, tf.float32)
            for layer in augmentation:
                images = layer(images, training=True)
            return self.normalize(images), tf.cast(labels, tf.int32)

        epochs_dataset = [
            self.train.shuffle(buffer, seed=common.epoch_seed(seed, epoch))
            .batch(batch_size)
            .map(finish)
            for epoch in range(start_epoch, epochs)
        ]
        return common.concatenate(epochs_dataset).prefetch(tf.data.AUTOTUNE)

    def test_dataset(self, batch_size):
        return self.evaluation_dataset(batch_size, "test")

    def evaluation_dataset(self, batch_size, split="test"):
        common.check_split(split)
        dataset = self.test if split == "test" else self.train
        return (
            dataset.batch(batch_size)
            .map(lambda images, labels: (self.normalize(images), tf.cast(labels, tf.int32)))
            .prefetch(tf.data.AUTOTUNE)
        )
