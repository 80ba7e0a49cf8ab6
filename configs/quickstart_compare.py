"""The paper's comparison on the offline digits: classic distillers and their IE versions.

Teacher ResNet-20 -> ResNet-8 student, 16x16 digits, global batch 64, one device, 15 epochs.
Select the method with the variant (docs/method.md#ie-x): `:student` (CE alone), `:ie`, and
`:kd`, `:at`, `:ft`, `:fitnet`, `:crd` alone or with the IE terms (`:ie_kd`, ...), with the
standard settings (KD: T = 4, alpha 0.9; CRD with 1,024 negatives on this small set). A
variant's objective, written from its weights, is `methods.objective(get_config(variant))`
(`iekd_keras.experiment.methods`).

Add `,smoke` for a 2-epoch run. To share one teacher across methods and seeds, pass
`--config.teacher.checkpoint=runs/quickstart/teacher/last.keras`.

    python scripts/train.py --config=configs/quickstart_compare.py:ie_kd --workdir=runs/ie_kd
    python scripts/sweep.py --config=configs/quickstart_compare.py:kd --workdir=runs/kd --seeds=0,1,2
    python scripts/train.py --config=configs/quickstart_compare.py:crd,smoke --workdir=/tmp/crd

Measured on 2 CPU cores with a shared teacher: about 1 minute per run.
"""

from iekd_keras.experiment.methods import apply_method
from iekd_keras.experiment.recipes import apply_variant, digits_quickstart


def get_config(arg=None):
    parts = [part for part in (arg or "ie").split(",") if part]
    smoke = "smoke" in parts
    methods = [part for part in parts if part != "smoke"] or ["ie"]
    if len(methods) != 1:
        raise ValueError(f"Config variant {arg!r}: give exactly one method, and optionally smoke.")
    config = digits_quickstart()
    config.baseline = False
    config.export = False
    apply_method(config, methods[0])
    for loss in config.distillation_losses:
        if loss["type"] == "crd":
            loss["kwargs"] = {**loss["kwargs"], "num_negatives": 1024}
    return apply_variant(config, "smoke" if smoke else None)
