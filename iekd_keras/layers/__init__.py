"""Serialisable Keras layers of the IE framework: split, factor coders and the two IE losses."""

from iekd_keras.layers.exploration_loss import ExplorationLoss
from iekd_keras.layers.factor_autoencoder import FactorAutoencoder
from iekd_keras.layers.factor_distance import FactorDistance, normalize_per_sample
from iekd_keras.layers.factor_encoder import FactorEncoder
from iekd_keras.layers.feature_split import FeatureSplit
from iekd_keras.layers.inheritance_loss import InheritanceLoss

__all__ = [
    "ExplorationLoss",
    "FactorAutoencoder",
    "FactorDistance",
    "FactorEncoder",
    "FeatureSplit",
    "InheritanceLoss",
    "normalize_per_sample",
]
