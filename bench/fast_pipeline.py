"""Experiment: a batched training pipeline for `ImageData` (bench-only prototype).

`ImageData.train_dataset` maps `pad_crop_flip` over single examples: ~15 small TF ops per image
(gather, seed arithmetic, stateless_split, reflect pad, stateless crop, stateless flip), each
paying tf.data's per-element function overhead. On 2 cores that caps the pipeline at a few
thousand images/s, close to the quickstart's training step (bench/input_pipeline.py).

`batched_train_dataset` keeps the same contract (the epoch order is the same stateless
permutation of (seed, epoch); every crop and flip is a pure function of (seed, epoch, example
index), independent of the batch size; batches never straddle epochs; same normalisation and
extra augmentation layers) but works on whole batches: the indices are batched first, then ONE
map gathers the images, draws each example's crop offsets and flip bit from
`tf.random.experimental.index_shuffle` (vectorised over the example indices, seeded by
(seed, epoch)), reflect-pads the batch and crops it with two batched gathers. The random
draws differ from the per-example `stateless_random_crop` stream, so crops are not
bit-identical to today's pipeline (same distribution; a resumed run is still exact).
"""

import tensorflow as tf

_MAX_DRAW = 2**31 - 1


def _draws(seed, epoch, indices):
    """A pseudo-random int64 in [0, 2^31) per example: a pure function of (seed, epoch, index)."""
    key = tf.stack([tf.cast(seed, tf.int64) * 1_000_003 + 0x5EED, tf.cast(epoch, tf.int64)])
    return tf.random.experimental.index_shuffle(
        tf.cast(indices, tf.int64), key, tf.constant(_MAX_DRAW, tf.int64)
    )


def batched_pad_crop_flip(images, draws, padding, flip):
    """Per-example reflect-pad + random crop (+ horizontal flip) of a (B, H, W, C) batch."""
    if not padding and not flip:
        return images
    height, width = tf.shape(images)[1], tf.shape(images)[2]
    span = tf.cast(2 * padding + 1, tf.int64)
    if padding:
        offset_y = tf.cast(draws % span, tf.int32)
        offset_x = tf.cast((draws // span) % span, tf.int32)
        padded = tf.pad(
            images, [[0, 0], [padding, padding], [padding, padding], [0, 0]], mode="REFLECT"
        )
        rows = offset_y[:, None] + tf.range(height)[None, :]
        cols = offset_x[:, None] + tf.range(width)[None, :]
        images = tf.gather(padded, rows, axis=1, batch_dims=1)
        images = tf.gather(images, cols, axis=2, batch_dims=1)
    if flip:
        flip_bit = ((draws // (span * span)) % 2) == 1
        images = tf.where(flip_bit[:, None, None, None], tf.reverse(images, axis=[2]), images)
    return images


def batched_train_dataset(
    data, batch_size, seed, epochs, start_epoch=0, with_index=False, augmentation=()
):
    """`data.train_dataset(...)` with batched augmentation (see the module docstring)."""
    count = data.num_train_examples
    images = tf.convert_to_tensor(data.train_images)
    labels = tf.convert_to_tensor(data.train_labels.astype("int32"))

    def one_epoch(epoch):
        order_seed = tf.stack([tf.cast(seed, tf.int64), epoch + 7919])
        order = tf.argsort(tf.random.stateless_uniform([count], seed=order_seed))

        def prepare(batch_indices):
            batch = tf.cast(tf.gather(images, batch_indices), tf.float32)
            batch = batched_pad_crop_flip(
                batch, _draws(seed, epoch, batch_indices), data.padding, data.flip
            )
            for layer in augmentation:
                batch = layer(batch, training=True)
            batch = data.normalize(batch)
            batch_indices = tf.cast(batch_indices, tf.int64)
            inputs = (batch, batch_indices) if with_index else batch
            return inputs, tf.gather(labels, batch_indices)

        return (
            tf.data.Dataset.from_tensor_slices(order)
            .batch(batch_size)
            .map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        )

    epochs_dataset = tf.data.Dataset.range(start_epoch, epochs)
    return epochs_dataset.flat_map(one_epoch).prefetch(tf.data.AUTOTUNE)
