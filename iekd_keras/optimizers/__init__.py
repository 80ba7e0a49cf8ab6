"""Optimizers that reproduce the paper's PyTorch recipe."""

from iekd_keras.optimizers.coupled_weight_decay_sgd import CoupledWeightDecaySGD

__all__ = ["CoupledWeightDecaySGD"]
