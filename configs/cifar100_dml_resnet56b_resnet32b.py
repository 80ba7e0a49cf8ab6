"""CIFAR-100 DML: resnet56b <-> resnet32b, both trained from scratch together.

`config/DML/cifar100/resnet56-20.yaml`: peer 1 `resnet56B`, peer 2 `resnet32B` (option B both;
the yaml's name says 20 but its student is a ResNet-32), KL weight 1.
Objective of peer k, written from the config's weights: `methods.objective(get_config())`
(`iekd_keras.experiment.methods`, docs/method.md#ie-dml): DML's CE_k + KL, T = 1.
Recipe of the released DML configs: 200 epochs, GLOBAL batch 64 on ONE device, Nesterov SGD
0.1 x0.1 at epochs 60/120/180, coupled weight decay 5e-4, alternating updates (peer 1 first).
Field-by-field comparison with the released yaml: docs/config_audit.md.

    python scripts/train.py --config=configs/cifar100_dml_resnet56b_resnet32b.py --workdir=runs/cifar100_dml_resnet56b_resnet32b
    python scripts/train.py --config=configs/cifar100_dml_resnet56b_resnet32b.py:smoke --workdir=/tmp/cifar100_dml_resnet56b_resnet32b

Expected top-1 on a GPU (literature bands for DML, unverified): ResNet-32 about 70-72%,
ResNet-56 about 72-74%, MobileNet about 68-72%; IE-DML above DML for both peers (Table 4).
Run time on a GPU: not measured yet.
"""

from iekd_keras.experiment.recipes import paper_dml


def get_config(arg=None):
    return paper_dml("cifar100", "resnet56b", "resnet32b", ie=False, arg=arg)
