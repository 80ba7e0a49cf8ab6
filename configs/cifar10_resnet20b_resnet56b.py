"""CIFAR-10: resnet20b -> resnet56b with IE-KD, the paper's recipe.

The reverse experiment of the released `config/ie_kd.yaml` (student larger than teacher, Fig.
1(b)): ResNet-20(B) -> ResNet-56(B), with its lambda_inh = lambda_exp = 1.
Variants (`--config=<file>:<method>[,smoke]`, docs/method.md#ie-x); the default is `ie`:
- `student`: CE (the student alone; every run also trains it as the `baseline` stage)
- `ie`: CE + lambda_inh * D_1(F_inh, F_T) - lambda_exp * D_1(F_exp, F_T)
- `kd`: 0.05 * CE + 0.95 * T^2 * KL(p_t^T || p_s^T), T = 20 (this pair has no KD yaml; alpha
  0.95, T 20 of the CIFAR-10 one, `config/kd/cifar10/resnet56-20.yaml`); `ie_kd` adds the IE terms
- `at`: CE + 1000 * sum over stages 1-3 of mean (a_s - a_t)^2; `ie_at` adds the IE terms
- `ft`: CE + 500 * D_1(translator(f_s), F_T); `ie_ft` adds the IE terms
- `fitnet`: CE + 100 * MSE(regressor(f_s^stage2), f_t^stage2)
- `crd`: CE + 0.8 * CRD (16384 negatives, T = 0.07); `ie_crd` adds the IE terms
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
