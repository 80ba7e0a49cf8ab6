"""The library's previous layers, for before/after measurements of two adopted changes.

The library now builds `iekd_keras.layers.BatchNormalization` (TensorFlow's FusedBatchNormV3,
one kernel each way) and subsamples the option-A shortcut by a 1x1 stride-2 max pooling. These
patches make its model builders build what they built before, for an A/B in one process
(`--patches=keras_bn+sliced_shortcut` of bench/step_cost.py, vs_torch.py, profile_step.py, and
`--experiment=` of library_experiments.py); they edit no library file.

  keras_bn         Keras 3's BatchNormalization (moments + batch_normalization: about ten
                   element-wise and reduction kernels forward, more backward) in the backbones,
                   the factor coders and FitNet's regressor.
  sliced_shortcut  the option-A shortcut's `x[:, ::2, ::2, :]` (StridedSlice, StridedSliceGrad).
"""

import importlib

import keras


def patch_keras_bn():
    """Makes the library build Keras's BatchNormalization; returns a function that undoes it."""
    from iekd_keras.layers import factor_encoder
    from iekd_keras.losses import fitnet
    from iekd_keras.models import _building_blocks as blocks

    def batch_norm(x, name):
        return keras.layers.BatchNormalization(
            momentum=blocks.BATCH_NORM_MOMENTUM, epsilon=blocks.BATCH_NORM_EPSILON, name=name
        )(x)

    def pytorch_batch_norm(name, synchronized=False):
        return keras.layers.BatchNormalization(
            momentum=0.9, epsilon=1e-5, synchronized=synchronized, name=name
        )

    originals = [
        (blocks, "batch_norm", batch_norm),
        (factor_encoder, "pytorch_batch_norm", pytorch_batch_norm),
        (fitnet, "pytorch_batch_norm", pytorch_batch_norm),
    ]
    return _swap(originals)


def sliced_option_a_shortcut(x, planes):
    """The option-A shortcut as the library built it before: a strided slice, then the pad."""
    pad = planes // 4
    return keras.ops.pad(x[:, ::2, ::2, :], [[0, 0], [0, 0], [0, 0], [pad, pad]])


def patch_sliced_shortcut():
    """Makes `cifar_resnet` subsample by the strided slice; returns an undo function."""
    # The package re-exports the function cifar_resnet, which hides the module of that name.
    cifar_resnet = importlib.import_module("iekd_keras.models.cifar_resnet")
    return _swap([(cifar_resnet, "_option_a_shortcut", sliced_option_a_shortcut)])


def _swap(replacements):
    saved = [(module, name, getattr(module, name)) for module, name, _ in replacements]
    for module, name, value in replacements:
        setattr(module, name, value)

    def undo():
        for module, name, value in saved:
            setattr(module, name, value)

    return undo
