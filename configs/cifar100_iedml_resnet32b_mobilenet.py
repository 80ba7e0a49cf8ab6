"""CIFAR-100 IE-DML: resnet32b <-> mobilenet, both trained from scratch together.

`config/DML/cifar100/mobilenet-resnet32.yaml`: peer 1 is the ResNet-32 with option B (the yaml's
`teacher`, updated first in each step), peer 2 the CIFAR MobileNet (its `student`). The yaml leaves kl_loss_weight at the released code's default 0, which
would train the two nets independently; the KL weight here is DML's 1, as in
`config/DML/cifar100/resnet56-20.yaml`, the one DML yaml that sets it.
Objective of peer k, written from the config's weights: `methods.objective(get_config())`
(`iekd_keras.experiment.methods`): DML's CE_k + KL (T = 1) plus the IE terms, weights 50/50,
against the peer's online auto-encoder factor (an assumption, docs/method.md#ie-dml; the
released code has no IE-DML).
Recipe of the released DML configs: 200 epochs, GLOBAL batch 64 on ONE device, Nesterov SGD
0.1 x0.1 at epochs 60/120/180, coupled weight decay 5e-4, alternating updates (peer 1 first).
Field-by-field comparison with the released yaml: docs/config_audit.md.

    python scripts/train.py --config=configs/cifar100_iedml_resnet32b_mobilenet.py --workdir=runs/cifar100_iedml_resnet32b_mobilenet
    python scripts/train.py --config=configs/cifar100_iedml_resnet32b_mobilenet.py:smoke --workdir=/tmp/cifar100_iedml_resnet32b_mobilenet

Expected top-1 on a GPU (literature bands for DML, unverified): ResNet-32 about 70-72%,
ResNet-56 about 72-74%, MobileNet about 68-72%; IE-DML above DML for both peers (Table 4).
Run time on a GPU: not measured yet.
"""

from iekd_keras.experiment.recipes import paper_dml


def get_config(arg=None):
    return paper_dml("cifar100", "resnet32b", "mobilenet", ie=True, arg=arg)
