"""The distillation methods a config can name, and how IE combines with them (IE-X).

IE-X = X's own full objective (its own CE weight included) + lambda_inh * L_inh
       + lambda_exp * L_exp on the split halves (docs/method.md#ie-x). Each method's extra terms are
config entries `{"type": ..., "kwargs": {...}}` in `config.distillation_losses`; the models'
stage taps they need are in `config.teacher.taps` / `config.student.taps`.
"""

import difflib

from iekd_keras.losses import (
    AttentionTransfer,
    ContrastiveRepresentationDistillation,
    FactorTransfer,
    FitNetHint,
    HintonKD,
)

LOSS_TYPES = {
    "kd": HintonKD,
    "at": AttentionTransfer,
    "fitnet": FitNetHint,
    "ft": FactorTransfer,
    "crd": ContrastiveRepresentationDistillation,
}
DISPLAY_NAMES = {"kd": "KD", "at": "AT", "fitnet": "FitNet", "ft": "FT", "crd": "CRD"}

# Each method: its formula, its extra terms and the taps it needs. Standard
# hyper-parameters of docs/method.md#ie-x (KD: T = 4, alpha = 0.9, CE weight 1 - alpha; AT:
# beta = 1000 on the three stage outputs; FitNet: beta = 100 at stage 2; FT: beta = 500;
# CRD: beta = 0.8). apply_method's `kd` sets other KD settings, e.g. a released yaml's.
STAGES = ("stage1", "stage2", "stage3")
STANDARD_KD = {"temperature": 4.0, "alpha": 0.9}
METHODS = {
    "student": {"formula": "CE (the student alone)", "losses": ()},
    "ie": {
        "formula": "CE + 50 * D_1(F_inh, F_T) - 50 * D_1(F_exp, F_T)",
        "losses": (),
    },
    "kd": {
        "formula": "{ce} * CE + {alpha} * T^2 * KL(p_t^T || p_s^T), T = {temperature}",
        "losses": ({"type": "kd", "kwargs": dict(STANDARD_KD)},),
    },
    "at": {
        "formula": "CE + 1000 * sum_stages mean (a_s - a_t)^2 (a: normalised attention maps)",
        "losses": ({"type": "at", "kwargs": {"beta": 1000.0}},),
        "taps": STAGES,
    },
    "fitnet": {
        "formula": "CE + 100 * MSE(regressor(f_s^stage2), f_t^stage2)",
        "losses": ({"type": "fitnet", "kwargs": {"beta": 100.0}},),
        "taps": ("stage2",),
    },
    "ft": {
        "formula": "CE + 500 * D_1(translator(f_s), F_T) (full-width translator)",
        "losses": ({"type": "ft", "kwargs": {"beta": 500.0}},),
    },
    "crd": {
        "formula": "CE + 0.8 * CRD (NCE over 16384 negatives, T = 0.07, memory momentum 0.5)",
        "losses": ({"type": "crd", "kwargs": {"beta": 0.8}},),
    },
}


def apply_method(config, method, kd=None):
    """Sets `config` up for `method` ("kd", "at", ...) or its IE combination ("ie_kd", ...).

    Without the "ie_" prefix the IE weights are 0 (the classic method alone); with it they
    keep their values (default 50/50). "ie" alone is CE + the IE terms. `kd` overrides the
    standard KD settings (T = 4, alpha = 0.9); KD's CE weight is 1 - alpha.

    Example:
        >>> config = apply_method(base_config(), "ie_kd", kd={"temperature": 20.0, "alpha": 0.95})
        >>> config.distiller.student_loss_weight
        0.05
    """
    ie = method == "ie" or method.startswith("ie_")
    base = method[3:] if method.startswith("ie_") else method
    if base not in METHODS or method in ("ie_ie", "ie_student"):
        valid = sorted({*METHODS, *(f"ie_{m}" for m in METHODS if m not in ("ie", "student"))})
        close = difflib.get_close_matches(method, valid, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown method {method!r}; expected one of {valid}.{hint}")
    settings = kd_settings(kd)
    losses = [dict(loss) for loss in METHODS[base]["losses"]]
    for loss in losses:
        if loss["type"] == "kd":
            loss["kwargs"] = {**loss["kwargs"], **settings}
    config.distillation_losses = tuple(losses)
    config.distiller.student_loss_weight = kd_ce_weight(settings) if base == "kd" else 1.0
    config.teacher.taps = config.student.taps = tuple(METHODS[base].get("taps", ()))
    if not ie:
        config.distiller.lambda_inh = config.distiller.lambda_exp = 0.0
    return config


def kd_settings(kd=None):
    """The KD temperature and alpha: the standard ones, updated by `kd`.

    Example:
        >>> kd_settings({"alpha": 0.95, "temperature": 20.0})
        {'temperature': 20.0, 'alpha': 0.95}
    """
    unknown = sorted(set(kd or {}) - set(STANDARD_KD))
    if unknown:
        raise ValueError(
            f"KD settings {kd} have unknown keys {unknown}; expected only {sorted(STANDARD_KD)}."
        )
    return {**STANDARD_KD, **(kd or {})}


def kd_ce_weight(settings):
    """KD's cross-entropy weight 1 - alpha, rounded so that 1 - 0.95 reads 0.05."""
    return round(1.0 - settings["alpha"], 12)


def formula(method, kd=None):
    """The objective of `method` as a string, for config docstrings and reports.

    Example:
        >>> formula("kd", kd={"temperature": 20.0, "alpha": 0.95})
        '0.05 * CE + 0.95 * T^2 * KL(p_t^T || p_s^T), T = 20'
    """
    base = method[3:] if method.startswith("ie_") else method
    text = METHODS[base]["formula"]
    if base == "kd":
        settings = kd_settings(kd)
        text = text.format(
            ce=f"{kd_ce_weight(settings):g}",
            alpha=f"{settings['alpha']:g}",
            temperature=f"{settings['temperature']:g}",
        )
    if method.startswith("ie_"):
        text += " + 50 * D_1(F_inh, F_T) - 50 * D_1(F_exp, F_T)"
    return text


def build_distillation_losses(specs, num_train_examples):
    """The loss objects of `config.distillation_losses`; CRD gets the dataset size."""
    losses = []
    for spec in specs:
        spec = dict(spec)
        loss_type = spec.get("type")
        if loss_type not in LOSS_TYPES:
            raise ValueError(
                f"config.distillation_losses entry {spec} has type {loss_type!r}; expected one "
                f"of {sorted(LOSS_TYPES)}."
            )
        kwargs = dict(spec.get("kwargs") or {})
        if loss_type == "crd":
            kwargs.setdefault("num_examples", num_train_examples)
        losses.append(LOSS_TYPES[loss_type](**kwargs))
    return losses


def label(config):
    """ "IE", "IE-KD", "KD", "IE-AT+KD", ... for reports ("student+CE" without any term)."""
    names = [
        DISPLAY_NAMES.get(spec["type"], spec["type"])
        for spec in config.get("distillation_losses", ())
    ]
    distiller = config["distiller"]
    ie = bool(distiller["lambda_inh"] or distiller["lambda_exp"])
    if not names:
        return "IE" if ie else "student+CE"
    return ("IE-" if ie else "") + "+".join(names)
