"""RepDistiller's CIFAR-100 benchmark (Tian et al., ICLR 2020) as configs: eleven of its
teacher/student pairs, its student recipe, each method with its own settings, and IE on top
(docs/kd_benchmark.md).

The teacher is RepDistiller's trained network, imported once from its PyTorch checkpoint into
a `.keras` file and never trained here; the IE auto-encoder stage runs on it unchanged, then the
student trains with RepDistiller's `train_student.py` recipe.
"""

from iekd_keras.experiment.methods import (
    apply_method,
    method_and_variant,
    stage_taps,
)
from iekd_keras.experiment.recipes import apply_variant, base_config

ZOO = "repdistiller"
# RepDistiller's `train_student.py` defaults (its teachers were trained the same way,
# `train_teacher.py`): 240 epochs, batch 64, SGD momentum 0.9 without Nesterov, LR 0.05 (0.01
# for the students MobileNetV2, ShuffleV1, ShuffleV2), x0.1 after epochs 150, 180 and 210,
# weight decay 5e-4 added to the gradients (`optim.SGD(weight_decay=5e-4)`).
EPOCHS = 240
BATCH_SIZE = 64
LEARNING_RATE = 0.05
SMALL_STUDENT_LEARNING_RATE = 0.01
SMALL_STUDENTS = ("mobilenetv2", "shufflev1", "shufflev2")
MILESTONES = (150, 180, 210)
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4
# Each method's settings in RepDistiller (`scripts/run_cifar_distill.sh`, and `train_student.py`'s
# defaults for what the script leaves out). KD: `-r 0.1 -a 0.9`, `--kd_T 4`. The other terms:
# `-r 1 -a 0` (CE weight 1, no KD) and `-b` the term's weight.
# AT reads every stage map both networks share (feat[1:-1], `methods.shared_stages`), FitNet
# the stage-2 map (`--hint_layer 2`), FT the student's last stage map (feat[-2], `stage_taps`),
# CRD the pooled features (feat[-1]).
REPDISTILLER_KD = {"temperature": 4.0, "alpha": 0.9}
REPDISTILLER_TERMS = {
    "at": {"beta": 1000.0},
    "fitnet": {"beta": 100.0, "teacher_output": "stage2", "student_output": "stage2"},
    "ft": {"beta": 200.0},
    "crd": {
        "beta": 0.8,
        "embedding_dim": 128,  # --feat_dim
        "num_negatives": 16384,  # --nce_k
        "temperature": 0.07,  # --nce_t
        "momentum": 0.5,  # --nce_m
    },
}
# Eleven of the thirteen pairs of its README tables (resnet110 -> resnet20 and ResNet50 -> vgg8
# have no config yet) and their published CIFAR-100 top-1 (%) in the columns `PUBLISHED_COLUMNS`:
# RepDistiller README, "Benchmark Results on CIFAR-100" (Tian et al., ICLR 2020), the accuracy of
# the last epoch (`train_student.py`): the teacher, the vanilla student and each method's student.
PUBLISHED_COLUMNS = ("teacher", "student", "kd", "fitnet", "at", "ft", "crd")
PUBLISHED_TOP1 = {
    ("resnet56", "resnet20"): (72.34, 69.06, 70.66, 69.21, 70.55, 69.84, 71.16),
    ("resnet110", "resnet32"): (74.31, 71.14, 73.08, 71.06, 72.31, 72.37, 73.48),
    ("resnet32x4", "resnet8x4"): (79.42, 72.50, 73.33, 73.50, 73.44, 72.86, 75.51),
    ("wrn_40_2", "wrn_16_2"): (75.61, 73.26, 74.92, 73.58, 74.08, 73.25, 75.48),
    ("wrn_40_2", "wrn_40_1"): (75.61, 71.98, 73.54, 72.24, 72.77, 71.59, 74.14),
    ("vgg13", "vgg8"): (74.64, 70.36, 72.98, 71.02, 71.43, 70.58, 73.94),
    ("vgg13", "MobileNetV2"): (74.64, 64.60, 67.37, 64.14, 59.40, 61.78, 69.73),
    ("ResNet50", "MobileNetV2"): (79.34, 64.60, 67.35, 63.16, 58.58, 60.99, 69.11),
    ("wrn_40_2", "ShuffleV1"): (75.61, 70.50, 74.83, 73.73, 73.32, 72.03, 76.05),
    ("resnet32x4", "ShuffleV1"): (79.42, 70.50, 74.07, 73.59, 71.73, 71.75, 75.11),
    ("resnet32x4", "ShuffleV2"): (79.42, 71.82, 74.45, 73.54, 72.73, 72.50, 75.65),
}


def teacher_checkpoint(teacher):
    """Where the benchmark expects the imported teacher (relative to the working directory).

    Example:
        >>> teacher_checkpoint("resnet32x4")
        'teachers/repdistiller/resnet32x4.keras'
    """
    return f"teachers/{ZOO}/{teacher}.keras"


def student_learning_rate(student):
    """RepDistiller's LR: 0.01 for the students MobileNetV2, ShuffleV1 and ShuffleV2, else 0.05.

    Example:
        >>> student_learning_rate("ShuffleV2"), student_learning_rate("resnet8x4")
        (0.01, 0.05)
    """
    return SMALL_STUDENT_LEARNING_RATE if student.lower() in SMALL_STUDENTS else LEARNING_RATE


def repdistiller_cifar100(teacher, student, arg=None):
    """RepDistiller's CIFAR-100 recipe for the pair `teacher` -> `student` (RepDistiller's
    architecture names, e.g. "resnet32x4", "ShuffleV1"; the models are `repdistiller/<arch>`).

    The teacher is `config.teacher.checkpoint`, by default `teachers/repdistiller/<teacher>.keras`,
    made once from RepDistiller's released checkpoint (`ckpt_epoch_240.pth` of
    `scripts/fetch_pretrained_teachers.sh`) by

        mkdir -p teachers/repdistiller
        python scripts/import_teacher.py --zoo=repdistiller --arch=<teacher> \\
            --checkpoint=<file>.pth --num_classes=100 \\
            --output=teachers/repdistiller/<teacher>.keras

    and is not trained. The IE auto-encoder stage (30 epochs at 0.1) runs on it, then the
    student: 240 epochs, global batch 64, SGD momentum 0.9 (no Nesterov), LR 0.05 (0.01 for
    MobileNetV2 / ShuffleV1 / ShuffleV2 students) x0.1 after epochs 150/180/210, coupled weight
    decay 5e-4. `arg` is "<method>[,smoke]" with a method of `iekd_keras.experiment.methods`
    ("ie", the default, "student", "kd", "ie_kd", "at", "ie_at", "ft", "ie_ft", "fitnet",
    "ie_fitnet", "crd", "ie_crd"), each term with RepDistiller's settings (`REPDISTILLER_KD`,
    `REPDISTILLER_TERMS`). The teacher factor is resized to the student's feature size when the
    two differ (e.g. resnet32x4 8x8 -> ShuffleV1 4x4).

    Example:
        >>> config = repdistiller_cifar100("resnet32x4", "ShuffleV1", "ie_kd")
        >>> config.optimizer.learning_rate, config.distiller.student_loss_weight
        (0.01, 0.1)
    """
    method, variant = method_and_variant(arg)
    config = base_config()
    config.data.name = "cifar100"
    config.batch_size = BATCH_SIZE
    config.teacher.model = f"{ZOO}/{teacher}"
    config.teacher.checkpoint = teacher_checkpoint(teacher)
    config.student.model = f"{ZOO}/{student}"
    # The teacher is not trained and no peers are, but check_milestones wants the LR drops
    # inside every stage's epochs.
    config.teacher.epochs = config.student.epochs = config.mutual.epochs = EPOCHS
    optimizer = config.optimizer
    optimizer.learning_rate = student_learning_rate(student)
    optimizer.momentum = MOMENTUM
    optimizer.nesterov = False
    optimizer.l2_decay = WEIGHT_DECAY
    optimizer.milestones = MILESTONES
    optimizer.gamma = 0.1
    config.distiller.resize_teacher_factor = True
    apply_method(config, method, kd=REPDISTILLER_KD)
    _use_repdistiller_terms(config)
    return apply_variant(config, variant)


def _use_repdistiller_terms(config):
    """Each extra term takes RepDistiller's settings; FT translates the student's last stage."""
    specs = []
    for spec in config.distillation_losses:
        kwargs = {**spec["kwargs"], **REPDISTILLER_TERMS.get(spec["type"], {})}
        if spec["type"] == "ft":
            kwargs["student_output"] = stage_taps(config.student.model)[-1]
            config.student.taps = (kwargs["student_output"],)
        specs.append({"type": spec["type"], "kwargs": kwargs})
    config.distillation_losses = tuple(specs)


def published_top1(teacher, student):
    """The published top-1 (%) of the pair, by `PUBLISHED_COLUMNS`.

    Example:
        >>> published_top1("resnet32x4", "resnet8x4")["kd"]
        73.33
    """
    if (teacher, student) not in PUBLISHED_TOP1:
        raise ValueError(
            f"RepDistiller publishes no CIFAR-100 results for {teacher!r} -> {student!r}; "
            f"expected one of the pairs {sorted(PUBLISHED_TOP1)}."
        )
    return dict(zip(PUBLISHED_COLUMNS, PUBLISHED_TOP1[(teacher, student)], strict=True))
