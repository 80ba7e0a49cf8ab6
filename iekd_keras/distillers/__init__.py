"""Training models: the IE-KD Distiller, the auto-encoder stage and standalone training."""

from iekd_keras.distillers.autoencoder_trainer import FactorAutoencoderTrainer
from iekd_keras.distillers.distiller import Distiller
from iekd_keras.distillers.mutual_distiller import MutualDistiller
from iekd_keras.distillers.standalone_trainer import StandaloneTrainer

__all__ = ["Distiller", "FactorAutoencoderTrainer", "MutualDistiller", "StandaloneTrainer"]
