"""CIFAR-100: resnet56b -> resnet20b with IE-KD, the paper's recipe.

CIFAR-100, ResNet-56(B) -> ResNet-20(B): `config/ft/cifar100/resnet56-20.yaml` sets option B
for both networks (its teacher checkpoint is `logs/ind/cifar100/resnet56_B`). Both networks
have the 1x1-conv (B) shortcut.
Variants (`--config=<file>:<method>[,smoke]`; the default is `ie`): `student` (CE alone; every
run also trains it as the `baseline` stage), `ie`, and `kd`, `at`, `ft`, `fitnet`, `crd` alone
or with the IE terms (`ie_kd`, ...), with the standard settings of docs/method.md#ie-x. A
variant's objective, written from its weights, is `methods.objective(get_config(variant))`
(`iekd_keras.experiment.methods`). KD takes alpha 0.9, T = 4 of the CIFAR-100 KD yaml,
`config/kd/cifar100/resnet110-32B.yaml` (this pair has none).
Recipe: 160 epochs, GLOBAL batch 128 on ONE device, Nesterov SGD 0.1 x0.1 at epochs 80/120,
coupled weight decay 5e-4; teacher auto-encoder 30 epochs at 0.1; a baseline student alone.
The student learns from the teacher's best epoch (best.keras: the highest test accuracy, from
epoch 20 on), selected on the test split as the released code does.
Field-by-field comparison with the released yaml: docs/config_audit.md.

    python scripts/train.py --config=configs/cifar100_resnet56b_resnet20b.py --workdir=runs/cifar100_resnet56b_resnet20b
    python scripts/train.py --config=configs/cifar100_resnet56b_resnet20b.py:smoke --workdir=/tmp/cifar100_resnet56b_resnet20b

Needs tensorflow-datasets to download cifar100 (about 160 MB) on first use, or
`--config.data.data_dir` pointing at a prepared copy. Expected top-1 on a GPU:
teacher 71-73%, baseline student 68-69.5%, IE-KD student 69.5-71% (literature bands; unverified).
Run time on a GPU: not measured yet.
"""

from iekd_keras.experiment.recipes import paper_cifar


def get_config(arg=None):
    config = paper_cifar("cifar100", "resnet56b", "resnet20b", arg)
    return config
