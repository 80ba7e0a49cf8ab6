"""Pieces every dataset class shares: normalisation, split names, per-epoch seeds."""

import functools
import math

import tensorflow as tf

SPLITS = ("train", "test")


def normalize(images, mean, std):
    """Raw 0-255 images to normalised float32: (x / 255 - mean) / std, per channel."""
    images = tf.cast(images, tf.float32) / 255.0
    return (images - tf.constant(mean, tf.float32)) / tf.constant(std, tf.float32)


def check_split(split):
    if split not in SPLITS:
        raise ValueError(f"split={split!r} must be 'train' or 'test'.")


def steps_per_epoch(num_examples, batch_size):
    """Batches per epoch, the last one possibly partial (PyTorch's drop_last=False)."""
    return math.ceil(num_examples / batch_size)


def epoch_seed(seed, epoch):
    """The seed of epoch `epoch`'s shuffle order, distinct for every (seed, epoch)."""
    return seed * 1_000_003 + epoch


def concatenate(datasets):
    """The datasets one after the other (one per epoch: batches never straddle epochs)."""
    return functools.reduce(lambda first, second: first.concatenate(second), datasets)
