"""One-step callables of the PyTorch eager reference (bench/torch_reference.py) on the same
numpy batches as the Keras variants (transposed to NCHW once, outside the timed steps)."""

import itertools


def network(pair, name):
    """The PyTorch reference of the pair's network `name` ("resnet20", "resnet56b", ...)."""
    import torch_reference as reference

    depth = int(name.removeprefix("resnet").removesuffix("b"))
    option = "B" if name.endswith("b") else "A"
    return reference.resnet(depth, pair.num_classes, pair.input_shape[-1], option)


def torch_variants(pair, wanted, train_batches, threads=0, run_decoders=False, prefix="torch"):
    """dict name -> one-step callable, for the kinds in `wanted` ("student", "iekd",
    "teacher", "eval")."""
    import numpy as np
    import torch
    import torch_reference as reference

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)

    images, labels = train_batches
    images = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 1, 4, 2, 3)))
    labels = torch.from_numpy(labels.astype("int64"))

    def cycling(step):
        order = itertools.cycle(range(len(images)))

        def run():
            index = next(order)
            return step(images[index], labels[index])

        return run

    variants = {}
    if "student" in wanted:
        variants[f"{prefix}_student"] = cycling(reference.StudentStep(network(pair, pair.student)))
    if "teacher" in wanted:
        variants[f"{prefix}_teacher"] = cycling(
            reference.TeacherInference(network(pair, pair.teacher))
        )
    if "iekd" in wanted:
        variants[f"{prefix}_iekd"] = cycling(
            reference.IEKDStep(
                network(pair, pair.teacher), network(pair, pair.student), run_decoders=run_decoders
            )
        )
    return variants


def main(argv=None):
    """Worker: serves the PyTorch steps of one pair over stdin/stdout (see _common.RemoteSteps)."""
    import os
    import sys

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import _common
    import _models

    parser = _common.argument_parser(
        __doc__, "torch_steps", repetitions=None, steps=None, tensorflow=False, wait=False
    )
    parser.add_argument("--variants", default="student,iekd")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--run_decoders", action="store_true")
    args = _common.parse_args(parser, argv)
    pair = _models.get_pair(args.pair, args.batch_size)
    batches = _common.random_batches(pair.input_shape, pair.num_classes, pair.batch_size)
    steps = torch_variants(
        pair, set(args.variants.split(",")), batches, args.threads, args.run_decoders, prefix="t"
    )
    steps = {name.removeprefix("t_"): step for name, step in steps.items()}
    _common.serve_steps(steps, args.warmup)


if __name__ == "__main__":
    main()
