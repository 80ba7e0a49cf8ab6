"""Quickstart: IE-KD on scikit-learn's handwritten digits, offline, on a laptop CPU.

Teacher ResNet-20 -> factor auto-encoder -> IE-KD ResNet-8 student, plus the same ResNet-8
trained alone from the same initial weights. 16x16 grey digits (1,438 train / 359 test),
global batch 64, one device. Objective: IE with lambda_inh = lambda_exp = 50, written from the
config's weights by `methods.objective(get_config())` (`iekd_keras.experiment.methods`,
docs/method.md#the-objective).
The student learns from the last teacher (15 epochs end before epoch 20, where the released
code starts keeping its best checkpoint).

    python scripts/train.py --config=configs/quickstart.py --workdir=runs/quickstart
    python scripts/train.py --config=configs/quickstart.py:smoke --workdir=/tmp/smoke

Measured on 2 CPU cores: about 3 minutes in all; test accuracy 98-100% for every model (one
seed: the order between the student and the baseline is noise at this size).
"""

from iekd_keras.experiment.recipes import apply_variant, digits_quickstart


def get_config(arg=None):
    return apply_variant(digits_quickstart(), arg)
