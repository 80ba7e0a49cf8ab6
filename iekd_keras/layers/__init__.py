"""Serialisable Keras layers of the IE framework: split, factor coders and the two IE losses,
the fused batch normalisation every model of the library builds, and ShuffleNet's grouped
convolution and channel shuffle."""

from iekd_keras.layers.batch_normalization import BatchNormalization
from iekd_keras.layers.channel_shuffle import ChannelShuffle
from iekd_keras.layers.exploration_loss import ExplorationLoss
from iekd_keras.layers.factor_autoencoder import FactorAutoencoder
from iekd_keras.layers.factor_distance import FactorDistance, normalize_per_sample
from iekd_keras.layers.factor_encoder import FactorEncoder
from iekd_keras.layers.feature_split import FeatureSplit
from iekd_keras.layers.grouped_conv2d import GroupedConv2D
from iekd_keras.layers.inheritance_loss import InheritanceLoss

__all__ = [
    "BatchNormalization",
    "ChannelShuffle",
    "ExplorationLoss",
    "FactorAutoencoder",
    "FactorDistance",
    "FactorEncoder",
    "FeatureSplit",
    "GroupedConv2D",
    "InheritanceLoss",
    "normalize_per_sample",
]
