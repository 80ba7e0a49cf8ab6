"""The distillation methods a config can name, and how IE combines with them (IE-X).

IE-X = X's own full objective (its own CE weight included) + lambda_inh * L_inh
       + lambda_exp * L_exp on the split halves (docs/method.md#ie-x). Each method's extra terms are
config entries `{"type": ..., "kwargs": {...}}` in `config.distillation_losses`; the models'
stage taps they need are in `config.teacher.taps` / `config.student.taps`. `objective(config)`
writes a config's objective from its own weights (the config files point at it).
"""

import difflib
import functools
import inspect
import re

from iekd_keras.losses import (
    AttentionTransfer,
    ContrastiveRepresentationDistillation,
    FactorTransfer,
    FitNetHint,
    HintonKD,
)
from iekd_keras.losses.attention_transfer import DEFAULT_PAIRS
from iekd_keras.models import get_model

LOSS_TYPES = {
    "kd": HintonKD,
    "at": AttentionTransfer,
    "fitnet": FitNetHint,
    "ft": FactorTransfer,
    "crd": ContrastiveRepresentationDistillation,
}
DISPLAY_NAMES = {"kd": "KD", "at": "AT", "fitnet": "FitNet", "ft": "FT", "crd": "CRD"}

# Each method: its extra terms and the taps it needs. Standard hyper-parameters of
# docs/method.md#ie-x (KD: T = 4, alpha = 0.9, CE weight 1 - alpha; AT: beta = 1000 on every
# stage output the two models share; FitNet: beta = 100 at stage 2; FT: beta = 500; CRD:
# beta = 0.8). apply_method's `kd` sets other KD settings, e.g. a released yaml's.
# EVERY_STAGE: the taps are the stage outputs ("stage1", "stage2", ...) both models have, found
# on the built models (`shared_stages`): three for the CIFAR ResNets, WRNs and MobileNet, four
# for VGG, ResNet-50 or MobileNetV2 (RepDistiller's AT reads feat[1:-1] of each network).
EVERY_STAGE = "every stage"
STAGE_NAME = re.compile(r"stage(\d+)")
STANDARD_KD = {"temperature": 4.0, "alpha": 0.9}
METHODS = {
    "student": {"losses": ()},
    "ie": {"losses": ()},
    "kd": {"losses": ({"type": "kd", "kwargs": dict(STANDARD_KD)},)},
    "at": {"losses": ({"type": "at", "kwargs": {"beta": 1000.0}},), "taps": EVERY_STAGE},
    "fitnet": {"losses": ({"type": "fitnet", "kwargs": {"beta": 100.0}},), "taps": ("stage2",)},
    "ft": {"losses": ({"type": "ft", "kwargs": {"beta": 500.0}},)},
    "crd": {"losses": ({"type": "crd", "kwargs": {"beta": 0.8}},)},
}
# Each term's objective (docs/method.md#ie-x) and its settings, from the term's arguments (those
# a config leaves out take the loss class's defaults); `objective` puts them together.
TERMS = {
    "kd": ("{alpha} * T^2 * KL(p_t^T || p_s^T)", "T = {temperature}"),
    "at": ("{beta} * sum over the taps of mean (a_s - a_t)^2", "a: normalised attention maps"),
    "fitnet": ("{beta} * MSE(regressor(f_s^{student_output}), f_t^{teacher_output})", None),
    "ft": ("{beta} * D_{p}(translator(f_s), F_T)", "full-width translator"),
    "crd": (
        "{beta} * CRD",
        "CRD: NCE over {num_negatives} negatives, tau = {temperature}, momentum {momentum}",
    ),
}


def apply_method(config, method, kd=None):
    """Sets `config` up for `method` ("kd", "at", ...) or its IE combination ("ie_kd", ...).

    Without the "ie_" prefix the IE weights are 0 (the classic method alone); with it they
    keep their values (default 50/50). "ie" alone is CE + the IE terms. `kd` overrides the
    standard KD settings (T = 4, alpha = 0.9); KD's CE weight is 1 - alpha. AT taps every stage
    output that `config.teacher.model` and `config.student.model` share (`shared_stages`), so
    set the models first; its `pairs` are written into the term's kwargs only when they differ
    from the term's default three stages.

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
    taps = METHODS[base].get("taps", ())
    if taps == EVERY_STAGE:
        taps = shared_stages(config.teacher.model, config.student.model)
    pairs = tuple((name, name) for name in taps)
    losses = [dict(loss) for loss in METHODS[base]["losses"]]
    for loss in losses:
        if loss["type"] == "kd":
            loss["kwargs"] = {**loss["kwargs"], **settings}
        if loss["type"] == "at" and pairs != DEFAULT_PAIRS:
            loss["kwargs"] = {**loss["kwargs"], "pairs": pairs}
    config.distillation_losses = tuple(losses)
    config.distiller.student_loss_weight = kd_ce_weight(settings) if base == "kd" else 1.0
    config.teacher.taps = config.student.taps = tuple(taps)
    if not ie:
        config.distiller.lambda_inh = config.distiller.lambda_exp = 0.0
    return config


def method_and_variant(arg, default="ie"):
    """A config file's argument "<method>[,smoke]" as (method, variant): the method (`default`
    when none is given) and "smoke" or None. Unknown methods are refused by `apply_method`.

    Example:
        >>> method_and_variant("ie_at,smoke")
        ('ie_at', 'smoke')
        >>> method_and_variant(None)
        ('ie', None)
    """
    parts = [part for part in (arg or "").split(",") if part]
    variants = [part for part in parts if part == "smoke"]
    methods = [part for part in parts if part != "smoke"]
    if len(methods) > 1 or len(variants) > 1:
        raise ValueError(f"Config variant {arg!r}: give at most one method and 'smoke'.")
    return (methods[0] if methods else default), (variants[0] if variants else None)


@functools.cache
def stage_taps(model_name):
    """The names of the stage outputs ("stage1", "stage2", ...) of registry model `model_name`,
    in order, read from the built model.

    Example:
        >>> stage_taps("resnet20")
        ('stage1', 'stage2', 'stage3')
    """
    model = get_model(model_name, num_classes=2, input_shape=(32, 32, 3))
    numbers = sorted(
        int(match.group(1))
        for match in (STAGE_NAME.fullmatch(layer.name) for layer in model.layers)
        if match
    )
    if not numbers:
        raise ValueError(
            f"Model {model_name!r} has no stage outputs (layers named 'stage1', 'stage2', ...) "
            "to tap; expected a backbone of iekd_keras.models."
        )
    return tuple(f"stage{number}" for number in numbers)


def shared_stages(teacher, student):
    """The stage outputs both models have, in order: what AT pairs (RepDistiller pairs the
    maps feat[1:-1] of the two networks in order, up to the shorter list).

    Example:
        >>> shared_stages("repdistiller/vgg13", "repdistiller/MobileNetV2")
        ('stage1', 'stage2', 'stage3', 'stage4')
    """
    student_stages = stage_taps(student)
    return tuple(name for name in stage_taps(teacher) if name in student_stages)


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
    """The objective of `method` with the standard settings (`kd`: other KD settings) and the IE
    weights of `base_config()`: `objective(apply_method(base_config(), method, kd))`.

    Example:
        >>> formula("kd", kd={"temperature": 20.0, "alpha": 0.95})
        '0.05 * CE + 0.95 * T^2 * KL(p_t^T || p_s^T); T = 20'
        >>> formula("ie")
        'CE + 50 * D_1(F_inh, F_T) - 50 * D_1(F_exp, F_T)'
    """
    from iekd_keras.experiment.recipes import base_config

    return objective(apply_method(base_config(), method, kd))


def objective(config):
    """The objective a config trains, as text, from its own weights (docs/method.md#the-objective;
    for method "dml", the objective of peer k, docs/method.md#ie-dml). Settings follow a ";".

    Example:
        >>> objective(quickstart.get_config())
        'CE + 50 * D_1(F_inh, F_T) - 50 * D_1(F_exp, F_T)'
    """
    if config["method"] == "dml":
        return _mutual_objective(config["mutual"], config["distiller"]["p"])
    distiller = config["distiller"]
    terms, notes = [_times(distiller["student_loss_weight"], "CE")], []
    for spec in config["distillation_losses"]:
        expression, note = TERMS[spec["type"]]
        settings = {**_defaults(LOSS_TYPES[spec["type"]]), **(spec.get("kwargs") or {})}
        settings = {key: _number(value) for key, value in settings.items()}
        terms.append(expression.format(**settings))
        notes += [note.format(**settings)] if note else []
    p = _number(distiller["p"])
    terms += _ie_terms(distiller, f"D_{p}(F_inh, F_T)", f"D_{p}(F_exp, F_T)")
    return _join(terms, notes)


def _mutual_objective(mutual, p):
    terms = ["CE_k", _times(mutual["kl_weight"], "T^2 * KL(p_-k || p_k)")]
    terms += _ie_terms(mutual, f"D_{_number(p)}(F_k^inh, F_-k)", f"D_{_number(p)}(F_k^exp, F_-k)")
    notes = [f"T = {_number(mutual['temperature'])}"]
    if len(terms) > 2:
        source = {"autoencoder": "online auto-encoder factor", "inheritance": "inheritance factor"}
        notes.append(f"F_-k: the other peer's {source[mutual['peer_factor']]}")
        if mutual["peer_factor"] == "autoencoder":
            terms.append("rec_k")
    return _join(terms, notes)


def _ie_terms(weights, inheritance, exploration):
    terms = []
    if weights["lambda_inh"]:
        terms.append(_times(weights["lambda_inh"], inheritance))
    if weights["lambda_exp"]:
        terms.append("-" + _times(weights["lambda_exp"], exploration))
    return terms


def _join(terms, notes):
    text = " + ".join(term for term in terms if term).replace("+ -", "- ")
    return "; ".join([text or "0", *notes])


def _times(weight, term):
    """`weight * term`, with no weight shown for 1 and nothing at all for 0."""
    if isinstance(weight, int | float) and weight in (0, 1):
        return term if weight == 1 else ""
    return f"{_number(weight)} * {term}"


def _number(value):
    return f"{value:g}" if isinstance(value, int | float) and not isinstance(value, bool) else value


def _defaults(cls):
    return {
        name: parameter.default
        for name, parameter in inspect.signature(cls.__init__).parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }


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
