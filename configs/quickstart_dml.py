"""Quickstart for mutual learning: DML of two ResNet-8 peers on the offline digits.

Objective of peer k, written from the config's weights: `methods.objective(get_config(variant))`
(`iekd_keras.experiment.methods`): DML's CE_k + KL (T = 1), alternating updates. The `ie`
variant is IE-DML: the IE terms, weights 50/50, against the peer's factor from its online
auto-encoder (docs/method.md#ie-dml; an assumption of this library).
16x16 digits, global batch 64, one device.

    python scripts/train.py --config=configs/quickstart_dml.py --workdir=runs/dml
    python scripts/train.py --config=configs/quickstart_dml.py:ie --workdir=runs/iedml
    python scripts/train.py --config=configs/quickstart_dml.py:smoke --workdir=/tmp/dml

Measured on 2 CPU cores: about 1 minute per run; both peers reach 95-99% test accuracy.
"""

from iekd_keras.experiment.recipes import apply_variant, base_config


def get_config(arg=None):
    config = base_config()
    config.method = "dml"
    config.data.name = "digits"
    config.data.image_size = 16
    config.batch_size = 64
    config.verbose = 2
    config.optimizer.milestones = (8, 12)
    config.teacher.epochs = config.student.epochs = config.mutual.epochs = 15
    config.mutual.peer1 = config.mutual.peer2 = "resnet8"
    variants = (arg or "").split(",")
    if "ie" in variants:
        config.mutual.lambda_inh = config.mutual.lambda_exp = 50.0
    rest = [v for v in variants if v not in ("", "ie")]
    apply_variant(config, rest[0] if rest else None)
    if "smoke" in rest:
        config.mutual.epochs = 2
    return config
