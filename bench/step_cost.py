"""What an IE-KD step costs next to the student and the teacher alone, interleaved in one run.

For each teacher/student pair (default: the CIFAR pair ResNet-56 -> ResNet-20 at batch 128, and
the quickstart's ResNet-20 -> ResNet-8 on 16x16 digits at batch 64), on fixed in-memory batches
(no input pipeline), through the models' own compiled Keras step functions (what `fit` and
`evaluate` call per step):

  (a) student_only  StandaloneTrainer(student) train step: CE + Nesterov SGD
  (b) teacher_infer the teacher's forward pass in inference mode (one compiled function)
  (c) iekd          Distiller(teacher, student, teacher_encoder) train step
  (d) iekd_kd       the same + HintonKD(T=4, alpha=0.9), student_loss_weight 0.1
  eval_student      StandaloneTrainer(student).evaluate step (eval batch)
  eval_distiller    Distiller(...).evaluate step (student only, the default)

and reports c / (a + b) (the cost of everything IE adds; 1.0 is the physical floor), d / (a + b)
and eval_distiller / eval_student. Targets: c / (a + b) <= 1.10, eval ratio <= 1.05.

    .venv/bin/python bench/step_cost.py                 # both pairs, a few minutes
    .venv/bin/python bench/step_cost.py --quick         # sanity run, under a minute
    .venv/bin/python bench/step_cost.py --pairs=cifar --max_wait_s=600
    .venv/bin/python bench/step_cost.py --patches=keras_bn+sliced_shortcut  # previous layers

Options: --patches builds every model with the patches of bench/experiments/ (there: the
library's previous layers); --jit_compile needs --no-deterministic (Keras ignores XLA under
op determinism, which scripts/train.py enables by default); --inter_op_threads /
--intra_op_threads set TensorFlow's thread pools.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import _models  # noqa: E402


def parse_args(argv=None):
    parser = _common.argument_parser(
        __doc__, "step_cost", pairs="cifar,quickstart", steps=4, patches=True
    )
    parser.add_argument("--jit_compile", action="store_true", help="XLA for every variant")
    parser.add_argument("--intra_op_threads", type=int, default=0)
    parser.add_argument("--inter_op_threads", type=int, default=0)
    return _common.parse_args(parser, argv)


def measure_pair(tf, pair_name, args):
    import keras

    from iekd_keras.distillers.standalone_trainer import StandaloneTrainer

    pair = _models.get_pair(pair_name, _common.batch_size(args, pair_name))
    keras.utils.set_random_seed(0)
    train_batches = _common.random_batches(pair.input_shape, pair.num_classes, pair.batch_size)
    eval_batches = _common.random_batches(
        pair.input_shape, pair.num_classes, pair.eval_batch_size, count=2, seed=1
    )

    teacher = _models.build_model(pair.teacher, pair)
    student_trainer = _models.student_trainer(pair, args.jit_compile)
    iekd, _ = _models.ie_distiller(pair, teacher, jit_compile=args.jit_compile)
    iekd_kd, kd_source = _models.ie_distiller(pair, teacher, kd=True, jit_compile=args.jit_compile)
    eval_student = StandaloneTrainer(iekd.student).compile(
        metrics=["accuracy"], jit_compile=args.jit_compile
    )

    def iterator(batches):
        return _common.cycling_iterator(tf, batches)

    variants = {
        "student_only": _common.keras_step(student_trainer, iterator(train_batches)),
        "teacher_infer": _models.teacher_inference_step(
            tf, teacher, iterator(train_batches), args.jit_compile
        ),
        "iekd": _common.keras_step(iekd, iterator(train_batches)),
        "iekd_kd": _common.keras_step(iekd_kd, iterator(train_batches)),
    }
    eval_variants = {
        "eval_student": _common.keras_step(eval_student, iterator(eval_batches), "test"),
        "eval_distiller": _common.keras_step(iekd, iterator(eval_batches), "test"),
    }
    print(f"\n[bench] pair {pair_name}: {pair.teacher} -> {pair.student}, batch {pair.batch_size}")
    times = _common.interleave(variants, args.repetitions, args.steps, args.warmup)
    eval_times = _common.interleave(
        eval_variants, args.repetitions, max(args.steps, 4), args.warmup
    )
    summary = {name: _common.summarize(t, pair.batch_size) for name, t in times.items()}
    summary.update(
        {name: _common.summarize(t, pair.eval_batch_size) for name, t in eval_times.items()}
    )
    med = {name: s["median_ms"] for name, s in summary.items()}
    floor = med["student_only"] + med["teacher_infer"]
    ratios = {
        "iekd_over_student_plus_teacher": round(med["iekd"] / floor, 3),
        "iekd_kd_over_student_plus_teacher": round(med["iekd_kd"] / floor, 3),
        "eval_distiller_over_eval_student": round(med["eval_distiller"] / med["eval_student"], 3),
        "iekd_over_student": round(med["iekd"] / med["student_only"], 3),
        "teacher_infer_over_student": round(med["teacher_infer"] / med["student_only"], 3),
    }
    # A per-round view of the headline ratio shows how stable it is on a noisy machine.
    per_round = []
    steps = args.steps
    for r in range(args.repetitions):
        sl = slice(r * steps, (r + 1) * steps)
        a = sorted(times["student_only"][sl])[steps // 2]
        b = sorted(times["teacher_infer"][sl])[steps // 2]
        c = sorted(times["iekd"][sl])[steps // 2]
        per_round.append(round(c / (a + b), 3))
    ratios["iekd_over_student_plus_teacher_per_round"] = per_round
    ratios["iekd_over_student_plus_teacher_per_round_median"] = round(
        sorted(per_round)[len(per_round) // 2], 3
    )
    return {
        "pair": vars(pair),
        "kd_term": kd_source,
        "summary": summary,
        "ratios": ratios,
        "final_losses_finite": all(
            _finite(v()) for v in (variants["iekd"], variants["student_only"])
        ),
    }


def _finite(value):
    return value == value and abs(value) != float("inf")


def main(argv=None):
    args = parse_args(argv)
    tf, info = _common.start_tensorflow(args, args.intra_op_threads, args.inter_op_threads)
    if args.patches:
        from experiments import patches

        patches.apply(args.patches)
        args.output += "_patched"
    results = {"machine": info, "settings": vars(args), "pairs": {}}
    for pair_name in args.pairs:
        results["pairs"][pair_name] = measure_pair(tf, pair_name, args)

    for pair_name, result in results["pairs"].items():
        p = result["pair"]
        _common.print_summary(
            f"{pair_name}: {p['teacher']} -> {p['student']}, train batch {p['batch_size']}, "
            f"eval batch {p['eval_batch_size']} (KD term: {result['kd_term']})",
            result["summary"],
        )
        r = result["ratios"]
        print(f"  c / (a + b)       = {r['iekd_over_student_plus_teacher']}  (target <= 1.10)")
        print(f"  per round         = {r['iekd_over_student_plus_teacher_per_round']}")
        print(f"  (c + KD) / (a + b) = {r['iekd_kd_over_student_plus_teacher']}")
        print(f"  eval ratio        = {r['eval_distiller_over_eval_student']}  (target <= 1.05)")
    _common.write_json(args.output, results)
    return results


if __name__ == "__main__":
    main()
