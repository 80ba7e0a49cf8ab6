"""ImageNet (ILSVRC 2012) from tensorflow-datasets, streamed from disk (manual download)."""

import dataclasses

import tensorflow as tf

from iekd_keras.data import common
from iekd_keras.data.augmentation import example_seed

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def random_resized_crop_flip(image, seed, size):
    """Inception-style crop (8%-100% of the area, aspect 3/4-4/3), resize, random flip."""
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image),
        bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
        seed=crop_seed,
        area_range=(0.08, 1.0),
        aspect_ratio_range=(3 / 4, 4 / 3),
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    image = tf.slice(image, begin, crop_size)
    image = tf.image.resize(tf.cast(image, tf.float32), (size, size), method="bilinear")
    return tf.image.stateless_random_flip_left_right(image, seed=flip_seed)


def resize_center_crop(image, size, resize_to=256):
    """The standard evaluation view: shorter side to `resize_to`, centre crop `size`."""
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = resize_to / tf.reduce_min(shape)
    new_shape = tf.cast(tf.round(shape * scale), tf.int32)
    image = tf.image.resize(tf.cast(image, tf.float32), new_shape, method="bilinear")
    return tf.image.resize_with_crop_or_pad(image, size, size)


@dataclasses.dataclass(frozen=True)
class ImageNetData:
    """ILSVRC 2012 through tfds (`imagenet2012`), read from `data_dir` / `manual_dir`.

    tensorflow-datasets cannot download ImageNet: place the official tar files in `manual_dir`
    and the first use prepares the dataset. Train: random-resized crop + flip at `image_size`;
    test: resize 256 and centre crop. Epoch e reads the files in an order seeded by (seed, e)
    and augments each example from (seed, e, position), so a resumed epoch replays exactly.
    """

    data_dir: str | None = None
    manual_dir: str | None = None
    image_size: int = 224
    shuffle_buffer: int = 10_000
    name: str = "imagenet2012"
    num_classes: int = 1000
    num_train_examples: int = 1_281_167
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD

    @property
    def input_shape(self):
        return (self.image_size, self.image_size, 3)

    def steps_per_epoch(self, batch_size):
        return common.steps_per_epoch(self.num_train_examples, batch_size)

    def normalize(self, images):
        return common.normalize(images, self.mean, self.std)

    def _load(self, split, shuffle_seed=None):
        import tensorflow_datasets as tfds

        download_config = tfds.download.DownloadConfig(manual_dir=self.manual_dir)
        return tfds.load(
            self.name,
            split=split,
            as_supervised=True,
            data_dir=self.data_dir,
            shuffle_files=shuffle_seed is not None,
            read_config=tfds.ReadConfig(shuffle_seed=shuffle_seed),
            download_and_prepare_kwargs={"download_config": download_config},
        )

    def train_dataset(self, batch_size, seed, epochs, start_epoch=0):
        datasets = []
        for epoch in range(start_epoch, epochs):
            examples = self._load("train", shuffle_seed=common.epoch_seed(seed, epoch)).enumerate()

            def prepare(index, example, epoch=epoch):
                image, label = example
                image = random_resized_crop_flip(
                    image, example_seed(seed, epoch, index), self.image_size
                )
                return self.normalize(image), tf.cast(label, tf.int32)

            datasets.append(
                examples.shuffle(self.shuffle_buffer, seed=common.epoch_seed(seed, epoch))
                .map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
                .batch(batch_size)
            )
        return common.concatenate(datasets).prefetch(tf.data.AUTOTUNE)

    def test_dataset(self, batch_size):
        return self.evaluation_dataset(batch_size, "test")

    def evaluation_dataset(self, batch_size, split="test"):
        """Resize-and-centre-crop batches of the validation ("test") or train split."""
        common.check_split(split)

        def prepare(image, label):
            image = resize_center_crop(image, self.image_size)
            return self.normalize(image), tf.cast(label, tf.int32)

        examples = self._load("validation" if split == "test" else "train")
        return (
            examples.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
            .batch(batch_size)
            .prefetch(tf.data.AUTOTUNE)
        )
