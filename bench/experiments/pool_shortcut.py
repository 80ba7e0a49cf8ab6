"""Prototype: the option-A ResNet shortcut as a 1x1 stride-2 pooling (not in the library yet).

`iekd_keras.models.cifar_resnet._option_a_shortcut` subsamples with `x[:, ::2, ::2, :]`, a
StridedSlice whose gradient is a StridedSliceGrad (a scatter into zeros): together ~27 ms of op
time per ResNet-20 step at batch 128 on 2 cores, ~5% (bench/profile_step.py). A
`MaxPooling2D(pool_size=1, strides=2)` selects exactly the same pixels (a 1x1 window holds one
value, for even and odd sizes alike) through oneDNN's pooling kernels; it adds no weights, so
weight counts and checkpoints do not change. `patch_library()` swaps it in for an A/B run
(`--patches=pool_shortcut`).
"""

import keras


def pooled_option_a_shortcut(x, planes):
    """Same values as `x[:, ::2, ::2, :]` zero-padded by planes // 4 channels per side."""
    pad = planes // 4
    subsampled = keras.layers.MaxPooling2D(pool_size=1, strides=2, padding="valid")(x)
    return keras.ops.pad(subsampled, [[0, 0], [0, 0], [0, 0], [pad, pad]])


def patch_library():
    """Makes `cifar_resnet` build the pooled shortcut from now on; returns an undo function."""
    import importlib

    # The package re-exports the function cifar_resnet, which hides the module of that name.
    cifar_resnet = importlib.import_module("iekd_keras.models.cifar_resnet")
    original = cifar_resnet._option_a_shortcut
    cifar_resnet._option_a_shortcut = pooled_option_a_shortcut

    def undo():
        cifar_resnet._option_a_shortcut = original

    return undo
