"""CIFAR-10: resnet20b -> resnet56b with IE-KD, the paper's recipe.

The reverse experiment of the released `config/ie_kd.yaml` (student larger than teacher, Fig.
1(b)), with its lambda_inh = lambda_exp = 1.
Objective: CE + lambda_inh * D_1(F_inh, F_T) - lambda_exp * D_1(F_exp, F_T) (method notes §2.4).
Recipe: 160 epochs, GLOBAL batch 128 on ONE device, Nesterov SGD 0.1 x0.1 at epochs 80/120,
coupled weight decay 5e-4; teacher auto-encoder 30 epochs at 0.1; a baseline student alone.

    python scripts/train.py --config=configs/cifar10_resnet20b_resnet56b.py --workdir=runs/cifar10_resnet20b_resnet56b
    python scripts/train.py --config=configs/cifar10_resnet20b_resnet56b.py:smoke --workdir=/tmp/cifar10_resnet20b_resnet56b

Needs tensorflow-datasets to download cifar10 (about 160 MB) on first use, or
`--config.data.data_dir` pointing at a prepared copy. Expected top-1 on a GPU:
teacher 91.5-92.5%, baseline 93.0-94.0%, IE-KD student at or above the baseline (Fig. 1(b);
unverified).
Run time on a GPU: not measured yet.
"""

from iekd_keras.recipes import paper_cifar


def get_config(arg=None):
    config = paper_cifar("cifar10", "resnet20b", "resnet56b", arg)
    config.distiller.lambda_inh = 1.0
    config.distiller.lambda_exp = 1.0
    return config
