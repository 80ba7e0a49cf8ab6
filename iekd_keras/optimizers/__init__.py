"""Optimizers that reproduce the paper's PyTorch recipe."""

from iekd_keras.optimizers.coupled_weight_decay_sgd import CoupledWeightDecaySGD
from iekd_keras.optimizers.peer_optimizer import PeerOptimizer

__all__ = ["CoupledWeightDecaySGD", "PeerOptimizer"]
