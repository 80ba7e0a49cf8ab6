"""CIFAR-10: resnet56b -> resnet20b with IE-KD, the paper's recipe.

The main CIFAR-10 pair of the released FT/KD configs (method notes §6).
Objective: CE + lambda_inh * D_1(F_inh, F_T) - lambda_exp * D_1(F_exp, F_T) (method notes §2.4).
Recipe: 160 epochs, GLOBAL batch 128 on ONE device, Nesterov SGD 0.1 x0.1 at epochs 80/120,
coupled weight decay 5e-4; teacher auto-encoder 30 epochs at 0.1; a baseline student alone.

    python scripts/train.py --config=configs/cifar10_resnet56b_resnet20b.py --workdir=runs/cifar10_resnet56b_resnet20b
    python scripts/train.py --config=configs/cifar10_resnet56b_resnet20b.py:smoke --workdir=/tmp/cifar10_resnet56b_resnet20b

Needs tensorflow-datasets to download cifar10 (about 160 MB) on first use, or
`--config.data.data_dir` pointing at a prepared copy. Expected top-1 on a GPU:
teacher 93.5-94.5%, baseline student 91.5-92.5%, IE-KD student 92.5-93.5% (the paper's summary
quotes 6.53% error for its best IE variant; unverified).
Run time on a GPU: not measured yet.
"""

from iekd_keras.recipes import paper_cifar


def get_config(arg=None):
    config = paper_cifar("cifar10", "resnet56b", "resnet20b", arg)
    return config
