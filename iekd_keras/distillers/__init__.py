"""Training models: the IE-KD Distiller and the teacher auto-encoder pre-training stage."""

from iekd_keras.distillers.autoencoder_trainer import FactorAutoencoderTrainer
from iekd_keras.distillers.distiller import Distiller

__all__ = ["Distiller", "FactorAutoencoderTrainer"]
