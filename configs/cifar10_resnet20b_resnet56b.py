"""CIFAR-10: resnet20b -> resnet56b with IE-KD, the paper's recipe.

The reverse experiment of the released `config/ie_kd.yaml` (student larger than teacher, Fig.
1(b)): ResNet-20(B) -> ResNet-56(B), with its lambda_inh = lambda_exp = 1 in the IE variants.
Variants (`--config=<file>:<method>[,smoke]`; the default is `ie`): `student` (CE alone; every
run also trains it as the `baseline` stage), `ie`, and `kd`, `at`, `ft`, `fitnet`, `crd` alone
or with the IE terms (`ie_kd`, ...), with the standard settings of docs/method.md#ie-x. A
variant's objective, written from its weights, is `methods.objective(get_config(variant))`
(`iekd_keras.experiment.methods`). KD takes alpha 0.95, T = 20 of the CIFAR-10 KD yaml,
`config/kd/cifar10/resnet56-20.yaml` (this pair has none).
Recipe: 160 epochs, GLOBAL batch 128 on ONE device, Nesterov SGD 0.1 x0.1 at epochs 80/120,
coupled weight decay 5e-4; teacher auto-encoder 30 epochs at 0.1; a baseline student alone.
The student learns from the teacher's best epoch (best.keras: the highest test accuracy, from
epoch 20 on), selected on the test split as the released code does.
Field-by-field comparison with the released yaml: docs/config_audit.md.

    python scripts/train.py --config=configs/cifar10_resnet20b_resnet56b.py --workdir=runs/cifar10_resnet20b_resnet56b
    python scripts/train.py --config=configs/cifar10_resnet20b_resnet56b.py:smoke --workdir=/tmp/cifar10_resnet20b_resnet56b

Needs tensorflow-datasets to download cifar10 (about 160 MB) on first use, or
`--config.data.data_dir` pointing at a prepared copy. Expected top-1 on a GPU:
teacher 91.5-92.5%, baseline 93.0-94.0%, IE-KD student at or above the baseline (Fig. 1(b);
unverified).
Run time on a GPU: not measured yet.
"""

from iekd_keras.experiment.recipes import paper_cifar


def get_config(arg=None):
    config = paper_cifar("cifar10", "resnet20b", "resnet56b", arg)
    if config.distiller.lambda_inh or config.distiller.lambda_exp:  # the IE variants only
        config.distiller.lambda_inh = config.distiller.lambda_exp = 1.0
    return config
