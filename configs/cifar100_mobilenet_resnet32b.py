"""CIFAR-100: mobilenet -> resnet32b with IE-KD, the paper's recipe.

CIFAR-100, the CIFAR MobileNet -> ResNet-32(B) (`config/ft/cifar100/mobilenet-resnet32B.yaml`);
the teacher is trained with weight decay 2e-4 (`config/ind/cifar100/mobilenet.yaml`) and its
factor coder maps 1024 -> 32 channels.
Variants (`--config=<file>:<method>[,smoke]`, docs/method.md#ie-x); the default is `ie`:
- `student`: CE (the student alone; every run also trains it as the `baseline` stage)
- `ie`: CE + lambda_inh * D_1(F_inh, F_T) - lambda_exp * D_1(F_exp, F_T)
- `kd`: 0.1 * CE + 0.9 * T^2 * KL(p_t^T || p_s^T), T = 4 (this pair has no KD yaml; alpha 0.9,
  T 4 of the CIFAR-100 one, `config/kd/cifar100/resnet110-32B.yaml`); `ie_kd` adds the IE terms
- `at`: CE + 1000 * sum over stages 1-3 of mean (a_s - a_t)^2; `ie_at` adds the IE terms
- `ft`: CE + 500 * D_1(translator(f_s), F_T); `ie_ft` adds the IE terms
- `fitnet`: CE + 100 * MSE(regressor(f_s^stage2), f_t^stage2)
- `crd`: CE + 0.8 * CRD (16384 negatives, T = 0.07); `ie_crd` adds the IE terms
Recipe: 160 epochs, GLOBAL batch 128 on ONE device, Nesterov SGD 0.1 x0.1 at epochs 80/120,
coupled weight decay 5e-4; teacher auto-encoder 30 epochs at 0.1; a baseline student alone.
The student learns from the teacher's best epoch (best.keras: the highest test accuracy, from
epoch 20 on), selected on the test split as the released code does.
Field-by-field comparison with the released yaml: docs/config_audit.md.

    python scripts/train.py --config=configs/cifar100_mobilenet_resnet32b.py --workdir=runs/cifar100_mobilenet_resnet32b
    python scripts/train.py --config=configs/cifar100_mobilenet_resnet32b.py:smoke --workdir=/tmp/cifar100_mobilenet_resnet32b

Needs tensorflow-datasets to download cifar100 (about 160 MB) on first use, or
`--config.data.data_dir` pointing at a prepared copy. Expected top-1 on a GPU:
teacher 66-70%, baseline student 70-71.5%, IE-KD student 70.5-72.5% (literature bands;
unverified).
Run time on a GPU: not measured yet.
"""

from iekd_keras.experiment.recipes import paper_cifar


def get_config(arg=None):
    config = paper_cifar("cifar100", "mobilenet", "resnet32b", arg)
    config.teacher.l2_decay = 2e-4
    return config
