"""CIFAR-10: resnet56b -> resnet20b with IE-KD, the paper's recipe.

The main CIFAR-10 pair of the released FT/KD configs (docs/method.md#teacher-and-student-pairs):
ResNet-56(B) -> ResNet-20(B) (`config/ft/cifar10/resnet56-20.yaml` and
`config/kd/cifar10/resnet56-20.yaml`).
Variants (`--config=<file>:<method>[,smoke]`; the default is `ie`): `student` (CE alone; every
run also trains it as the `baseline` stage), `ie`, and `kd`, `at`, `ft`, `fitnet`, `crd` alone
or with the IE terms (`ie_kd`, ...), with the standard settings of docs/method.md#ie-x. A
variant's objective, written from its weights, is `methods.objective(get_config(variant))`
(`iekd_keras.experiment.methods`). KD takes alpha 0.95, T = 20 of `config/kd/cifar10/resnet56-20.yaml`.
Recipe: 160 epochs, GLOBAL batch 128 on ONE device, Nesterov SGD 0.1 x0.1 at epochs 80/120,
coupled weight decay 5e-4; teacher auto-encoder 30 epochs at 0.1; a baseline student alone.
The student learns from the teacher's best epoch (best.keras: the highest test accuracy, from
epoch 20 on), selected on the test split as the released code does.
Field-by-field comparison with the released yaml: docs/config_audit.md.

    python scripts/train.py --config=configs/cifar10_resnet56b_resnet20b.py --workdir=runs/cifar10_resnet56b_resnet20b
    python scripts/train.py --config=configs/cifar10_resnet56b_resnet20b.py:smoke --workdir=/tmp/cifar10_resnet56b_resnet20b

Needs tensorflow-datasets to download cifar10 (about 160 MB) on first use, or
`--config.data.data_dir` pointing at a prepared copy. Expected top-1 on a GPU:
teacher 93.5-94.5%, baseline student 91.5-92.5%, IE-KD student 92.5-93.5% (the paper's summary
quotes 6.53% error for its best IE variant; unverified).
Run time on a GPU: not measured yet.
"""

from iekd_keras.experiment.recipes import paper_cifar


def get_config(arg=None):
    config = paper_cifar("cifar10", "resnet56b", "resnet20b", arg)
    return config
