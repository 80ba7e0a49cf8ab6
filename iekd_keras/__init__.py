"""iekd_keras: Inheritance and Exploration Knowledge Distillation (Huang et al., CVPR 2021)."""

from iekd_keras import layers, losses, models
from iekd_keras.distillers.autoencoder_trainer import FactorAutoencoderTrainer
from iekd_keras.distillers.distiller import Distiller
from iekd_keras.distillers.mutual_distiller import MutualDistiller
from iekd_keras.distillers.standalone_trainer import StandaloneTrainer
from iekd_keras.optimizers.coupled_weight_decay_sgd import CoupledWeightDecaySGD
from iekd_keras.optimizers.peer_optimizer import PeerOptimizer

__version__ = "0.1.0"

__all__ = [
    "CoupledWeightDecaySGD",
    "Distiller",
    "FactorAutoencoderTrainer",
    "MutualDistiller",
    "PeerOptimizer",
    "StandaloneTrainer",
    "layers",
    "losses",
    "models",
]
