"""CIFAR-100: RepDistiller's pair resnet110 -> resnet32 with its recipe and IE-KD.

One of the eleven CIFAR-100 pairs of RepDistiller's benchmark (docs/kd_benchmark.md): the
teacher is RepDistiller's released resnet110, imported once and not trained; the IE auto-encoder
stage (30 epochs at 0.1) runs on it, then the student trains with RepDistiller's recipe
(`iekd_keras.experiment.kd_benchmark.repdistiller_cifar100`): 240 epochs, GLOBAL batch 64 on
ONE device, SGD momentum 0.9 (no Nesterov) x0.1 after epochs 150/180/210, coupled weight decay
5e-4, LR 0.05;
a baseline student alone (RepDistiller's vanilla student).
Variants (`--config=<file>:<method>[,smoke]`; the default is `ie`): `student`, `ie`, and
`kd`, `at`, `fitnet`, `ft`, `crd` alone or with the IE terms (`ie_kd`, ...), each with
RepDistiller's settings. A variant's objective, written from its weights, is
`methods.objective(get_config(variant))` (`iekd_keras.experiment.methods`).

Import the teacher (RepDistiller's `scripts/fetch_pretrained_teachers.sh` downloads it), then
train:

    mkdir -p teachers/repdistiller
    python scripts/import_teacher.py --zoo=repdistiller --arch=resnet110 --checkpoint=save/models/resnet110_vanilla/ckpt_epoch_240.pth --num_classes=100 --output=teachers/repdistiller/resnet110.keras
    python scripts/train.py --config=configs/kd_benchmark_resnet110_resnet32.py:kd --workdir=runs/kd_benchmark_resnet110_resnet32/kd
    python scripts/train.py --config=configs/kd_benchmark_resnet110_resnet32.py:smoke --workdir=/tmp/kd_benchmark_resnet110_resnet32

Needs tensorflow-datasets to download cifar100 on first use, or `--config.data.data_dir`.
Expected band, RepDistiller's published CIFAR-100 top-1 of this pair (HobbitLong/RepDistiller
README, "CIFAR-100" tables; Tian et al., ICLR 2020), at the last epoch: teacher 74.31%,
student 71.14%, KD 73.08% (the other methods: docs/kd_benchmark.md). Compare the runs'
`last_test_accuracy`. Run time on a GPU: not measured yet.
"""

from iekd_keras.experiment.kd_benchmark import repdistiller_cifar100


def get_config(arg=None):
    return repdistiller_cifar100("resnet110", "resnet32", arg)
