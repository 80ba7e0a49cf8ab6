"""iekd_keras's Distiller vs Keras's own `keras.distillation.Distiller`, same work, one run.

Same teacher, same student architecture, same batches, same optimizer (CoupledWeightDecaySGD),
interleaved, through each model's own compiled train/test step:

  logits (Hinton KD, T = 4, alpha = 0.9: 0.1 * CE + 0.9 * T^2 KL):
    ours_kd       Distiller(teacher, student, lambda_inh=0, lambda_exp=0,
                            student_loss_weight=0.1, distillation_losses=[HintonKD(4, 0.9)])
    keras_kd      keras.distillation.Distiller(teacher, student,
                            LogitsDistillation(4, loss=KLDivergence()), student_loss_weight=0.1)
  features (MSE between the two last feature maps, 0.5 * CE + 0.5 * MSE):
    ours_feat     Distiller(..., student_loss_weight=0.5, distillation_losses=[
                            KerasDistillationLoss(FeatureDistillation("mse", "features",
                            "features"), weight=0.5)])
    keras_feat    keras.distillation.Distiller(teacher, student, FeatureDistillation("mse",
                            "features", "features"), student_loss_weight=0.5)
  evaluation of the KD distillers (ours runs the student alone, Keras's runs the teacher too):
    ours_kd_eval, keras_kd_eval

Keras's Distiller needs single-output models: it gets logits-only views of the same two-output
backbones (`keras.Model(m.inputs, m.outputs[0])`, shared layers). With FeatureDistillation by
layer name it runs the student a SECOND time through a feature-extractor model (forward and
backward), which ours does not. Reported: images/s and ours / Keras (target >= 1.0, and > 1
where Keras runs the student twice).

    .venv/bin/python bench/vs_keras.py
    .venv/bin/python bench/vs_keras.py --quick
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import _models  # noqa: E402


def parse_args(argv=None):
    parser = _common.argument_parser(__doc__, "vs_keras")
    parser.add_argument("--kinds", default="kd,feat,eval", help="some of kd, feat, eval")
    args = _common.parse_args(parser, argv)
    args.kinds = _common.comma_list(parser, args, "kinds", ("kd", "feat", "eval"))
    return args


def logits_view(model):
    import keras

    return keras.Model(model.inputs, model.outputs[0], name=f"{model.name}_logits")


def ours(pair, teacher, kind):
    import keras

    from iekd_keras import Distiller

    if kind == "kd":
        term, source = _models.hinton_kd(temperature=4.0, alpha=0.9)
        weight = 0.1
    else:
        from iekd_keras.losses import KerasDistillationLoss

        term = KerasDistillationLoss(
            keras.distillation.FeatureDistillation(
                loss="mse", teacher_layer_name="features", student_layer_name="features"
            ),
            weight=0.5,
            name="feature_loss",
        )
        source, weight = "library KerasDistillationLoss(FeatureDistillation)", 0.5
    distiller = Distiller(
        teacher,
        _models.build_model(pair.student, pair),
        None,
        lambda_inh=0.0,
        lambda_exp=0.0,
        student_loss_weight=weight,
        distillation_losses=[term],
    )
    distiller.compile(optimizer=_models.optimizer(), metrics=["accuracy"])
    return distiller, source


def theirs(pair, teacher, kind):
    import keras

    if kind == "kd":
        loss = keras.distillation.LogitsDistillation(
            temperature=4.0, loss=keras.losses.KLDivergence()
        )
        weight = 0.1
    else:
        loss = keras.distillation.FeatureDistillation(
            loss="mse", teacher_layer_name="features", student_layer_name="features"
        )
        weight = 0.5
    distiller = keras.distillation.Distiller(
        teacher=logits_view(teacher),
        student=logits_view(_models.build_model(pair.student, pair)),
        distillation_losses=loss,
        student_loss_weight=weight,
    )
    distiller.compile(
        optimizer=_models.optimizer(),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return distiller


def main(argv=None):
    args = parse_args(argv)
    tf, info = _common.start_tensorflow(args)
    import keras

    pair = _models.get_pair(args.pair, _common.batch_size(args, args.pair))
    kinds = args.kinds
    keras.utils.set_random_seed(0)
    batches = _common.random_batches(pair.input_shape, pair.num_classes, pair.batch_size)
    eval_batches = _common.random_batches(
        pair.input_shape, pair.num_classes, pair.eval_batch_size, count=2, seed=1
    )
    teacher = _models.build_model(pair.teacher, pair)

    def it(b):
        return _common.cycling_iterator(tf, b)

    variants, sources = {}, {}
    built = {}
    for kind in ("kd", "feat"):
        if kind in kinds or (kind == "kd" and "eval" in kinds):
            built[f"ours_{kind}"], sources[kind] = ours(pair, teacher, kind)
            built[f"keras_{kind}"] = theirs(pair, teacher, kind)
        if kind in kinds:
            variants[f"ours_{kind}"] = _common.keras_step(built[f"ours_{kind}"], it(batches))
            variants[f"keras_{kind}"] = _common.keras_step(built[f"keras_{kind}"], it(batches))
    eval_variants = {}
    if "eval" in kinds:
        eval_variants["ours_kd_eval"] = _common.keras_step(
            built["ours_kd"], it(eval_batches), "test"
        )
        eval_variants["keras_kd_eval"] = _common.keras_step(
            built["keras_kd"], it(eval_batches), "test"
        )

    print(f"[bench] {pair.teacher} -> {pair.student}, batch {pair.batch_size}")
    times = _common.interleave(variants, args.repetitions, args.steps, args.warmup)
    if eval_variants:
        times.update(
            _common.interleave(eval_variants, args.repetitions, max(args.steps, 4), args.warmup)
        )
    summary = _common.summarize_pair(times, pair)
    ratios = {}
    for kind in ("kd", "feat", "kd_eval"):
        a, b = summary.get(f"ours_{kind}"), summary.get(f"keras_{kind}")
        if a and b:
            ratios[f"ours_over_keras_{kind}"] = round(a["images_per_s"] / b["images_per_s"], 3)
    _common.print_summary(
        f"iekd_keras Distiller vs keras.distillation.Distiller: {pair.teacher} -> "
        f"{pair.student}, batch {pair.batch_size} (eval batch {pair.eval_batch_size})",
        summary,
    )
    for key, value in ratios.items():
        print(f"  {key} = {value}  (target >= 1.0)")
    print(f"  our KD term: {sources.get('kd')}; our feature term: {sources.get('feat')}")
    _common.write_json(
        args.output,
        {
            "machine": info,
            "settings": vars(args),
            "terms": sources,
            "summary": summary,
            "ratios": ratios,
        },
    )


if __name__ == "__main__":
    main()
