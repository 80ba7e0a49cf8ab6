"""Quickstart: IE-KD on scikit-learn's handwritten digits, offline, on a laptop CPU.

Teacher ResNet-20 -> factor auto-encoder -> IE-KD ResNet-8 student, plus the same ResNet-8
trained alone. 16x16 grey digits (1,438 train / 359 test), global batch 64, one device.
Objective: CE + 50 * L_inh + 50 * L_exp (IE-KD, method notes §2.4).

    python scripts/train.py --config=configs/quickstart.py --workdir=runs/quickstart
    python scripts/train.py --config=configs/quickstart.py:smoke --workdir=/tmp/smoke

Expected on 2 CPU cores: a few minutes in all, test accuracy in the mid-to-high 90s% for
every model (one seed: orderings between the student and the baseline are not meaningful).
"""

import ml_collections


def get_config(arg=None):
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.data = ml_collections.ConfigDict({"name": "digits", "image_size": 16})
    config.batch_size = 64
    config.eval_batch_size = 256
    config.verbose = 2
    config.optimizer = ml_collections.ConfigDict(
        {
            "learning_rate": 0.1,
            "momentum": 0.9,
            "nesterov": True,
            "l2_decay": 5e-4,
            "milestones": (8, 12),
            "gamma": 0.1,
        }
    )
    config.teacher = ml_collections.ConfigDict(
        {"model": "resnet20", "checkpoint": "", "epochs": 15}
    )
    config.autoencoder = ml_collections.ConfigDict(
        {"factor_channels": 32, "epochs": 5, "learning_rate": 0.1, "reconstruction": "l1"}
    )
    config.student = ml_collections.ConfigDict({"model": "resnet8", "epochs": 15})
    config.distiller = ml_collections.ConfigDict(
        {
            "lambda_inh": 50.0,
            "lambda_exp": 50.0,
            "student_loss_weight": 1.0,
            "split_mode": "natural",
            "split_ratio": 0.5,
            "split_seed": 0,
            "p": 1.0,
            "distance_metric": "lp",
        }
    )
    config.baseline = True
    config.export = True
    if arg == "smoke":
        config.teacher.epochs = config.student.epochs = 2
        config.autoencoder.epochs = 1
        config.optimizer.milestones = (1,)
    elif arg:
        raise ValueError(f"Unknown variant {arg!r} of configs/quickstart.py; expected 'smoke'.")
    return config
