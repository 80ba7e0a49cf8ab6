"""The paper's training augmentation as stateless ops: a pure function of (seed, epoch, index)."""

import tensorflow as tf


def example_seed(seed, epoch, index):
    """The stateless seed of one example in one epoch: the same on every run and every resume.

    Example:
        >>> example_seed(0, 3, 17)  # int64 tensor of shape (2,)
    """
    seed = tf.cast(seed, tf.int64)
    return tf.stack([seed * 1_000_003 + tf.cast(epoch, tf.int64), tf.cast(index, tf.int64)])


def pad_crop_flip(image, seed, padding, flip):
    """Reflect-pads by `padding`, crops back to the input size at random, flips left-right at
    random when `flip` (docs/method.md#data: CIFAR uses padding 4 and flips).

    Args:
        image: one image, (height, width, channels).
        seed: a stateless seed of shape (2,), e.g. from `example_seed`.
        padding: pixels of reflect padding on each side (0 skips the crop).
        flip: whether to flip horizontally with probability 1/2.
    """
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    if padding:
        padded = tf.pad(image, [[padding, padding], [padding, padding], [0, 0]], mode="REFLECT")
        image = tf.image.stateless_random_crop(padded, tf.shape(image), seed=crop_seed)
    if flip:
        image = tf.image.stateless_random_flip_left_right(image, seed=flip_seed)
    return image
