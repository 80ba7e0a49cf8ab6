"""A small replication on the offline digits, harder than the quickstart, with seeds paired.

At 16x16 and 15 epochs every method ties at 98-100% on the 359 test digits (one image is
0.28%). This protocol was fixed before any method's result was seen:

- data: scikit-learn's digits at their native 8x8 (`data.image_size = 8`), 1,438 train / 359
  test, global batch 64, one device.
- teacher: ResNet-20 trained ONCE by the `teacher` variant (the quickstart recipe at 8x8: 15
  epochs, LR 0.1, x0.1 after epochs 8 and 12; seed `TEACHER_SEED`); every run loads its last
  epoch through `config.teacher.checkpoint`, so the method configs' own teacher keys are unused.
- student: ResNet-8, the narrowest backbone of the registry, 3 epochs (LR 0.1, x0.1 after
  epoch 2); factor auto-encoder 3 epochs.
- methods (`METHODS`, one config variant each, `methods.apply_method`'s standard settings,
  KD: T = 4, alpha 0.9): student (cross-entropy alone), kd, ie_kd, at, ie_at, ft, ie_ft.
  Each variant's objective, written from its weights, is `methods.objective(get_config(variant))`
  (`iekd_keras.experiment.methods`).
- seeds `SEEDS` = 0-4 for every method. A seed fixes the student's initial weights and the
  order and crops of its batches, whatever the method (tests/experiment/test_replication.py),
  so every method is compared with the student alone of the same seed (the report gives the
  paired differences and their 95% intervals). No baseline stage: the `student` variant is the
  student alone.

The only results seen before fixing the protocol: a first pilot with a 15-epoch teacher whose LR
dropped after epoch 3 (it reached 93.59%, below its student) and a 4-epoch student alone
(97.49%: saturating); hence the quickstart teacher recipe and a 3-epoch student. Pilot of this
protocol (seed `TEACHER_SEED`): teacher 96.94%, student alone 96.94% (last epoch, 359 test images).

Measured (2 shared CPU cores, 14 min for the 35 method runs): the student alone 96.60 ± 1.09%
(97.77% on 2 of the 5 seeds, so it is near saturation still); KD +0.28 pp [-0.99, +1.55] and
IE-KD +0.50 pp [-0.36, +1.36] over it, paired by seed with 95% intervals: no difference shown at
5 seeds; AT and IE-AT collapse to about 50% (beta = 1000 dominates 3 epochs).

The whole replication (the teacher, then 7 methods x 5 seeds into `<workdir>/<method>/seed_<n>`,
then the report in `<workdir>/report.md`), resumable:

    python scripts/replicate.py --protocol=configs/digits_replication.py --workdir=runs/replication

One method by hand, with the teacher the driver trained:

    python scripts/sweep.py --config=configs/digits_replication.py:ie_kd --workdir=runs/replication/ie_kd --seeds=0,1,2,3,4 --config.teacher.checkpoint=runs/replication/teacher/teacher/last.keras
    python scripts/train.py --config=configs/digits_replication.py:kd,smoke --workdir=/tmp/kd
"""

from iekd_keras.experiment.methods import apply_method
from iekd_keras.experiment.recipes import apply_variant, digits_quickstart

METHODS = ("student", "kd", "ie_kd", "at", "ie_at", "ft", "ie_ft")
SEEDS = (0, 1, 2, 3, 4)
TEACHER_SEED = 100


def get_config(arg=None):
    """The protocol for one method (default "ie_kd"), or "teacher": the teacher's run; add
    ",smoke" for 2-epoch stages."""
    parts = [part for part in (arg or "ie_kd").split(",") if part]
    smoke = "smoke" in parts
    methods = [part for part in parts if part != "smoke"] or ["ie_kd"]
    if len(methods) != 1:
        raise ValueError(f"Config variant {arg!r}: give exactly one method, and optionally smoke.")
    config = digits_quickstart()
    config.data.image_size = 8
    config.baseline = False
    config.export = False
    if methods[0] == "teacher":  # the quickstart recipe: 15 epochs, LR x0.1 after 8 and 12
        apply_method(config, "student")
    else:
        config.optimizer.milestones = (2,)
        config.student.epochs = 3
        config.autoencoder.epochs = 3
        apply_method(config, methods[0])
    return apply_variant(config, "smoke" if smoke else None)
