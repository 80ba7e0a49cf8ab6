"""One-step callables of the PyTorch eager reference (bench/torch_reference.py) on the same
numpy batches as the Keras variants (transposed to NCHW once, outside the timed steps)."""

import itertools


def torch_variants(pair, wanted, train_batches, threads=0, run_decoders=False, prefix="torch"):
    """dict name -> one-step callable, for the kinds in `wanted` ("student", "iekd",
    "teacher", "eval")."""
    import numpy as np
    import torch
    import torch_reference as reference

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    option = "B" if pair.teacher.endswith("b") else "A"
    channels = pair.input_shape[-1]

    def depth(name):
        return int(name.removeprefix("resnet").removesuffix("b"))

    def network(name):
        return reference.resnet(depth(name), pair.num_classes, channels, option)

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
        variants[f"{prefix}_student"] = cycling(reference.StudentStep(network(pair.student)))
    if "teacher" in wanted:
        variants[f"{prefix}_teacher"] = cycling(reference.TeacherInference(network(pair.teacher)))
    if "iekd" in wanted:
        variants[f"{prefix}_iekd"] = cycling(
            reference.IEKDStep(
                network(pair.teacher), network(pair.student), run_decoders=run_decoders
            )
        )
    return variants


def main(argv=None):
    """Worker: serves the PyTorch steps of one pair over stdin/stdout (see _common.RemoteSteps)."""
    import argparse
    import os
    import sys

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import _common
    import _models

    parser = argparse.ArgumentParser()
    parser.add_argument("--pair", default="cifar")
    parser.add_argument("--batch_size", type=int, default=0)
    parser.add_argument("--variants", default="student,iekd")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--run_decoders", action="store_true")
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args(argv)
    pair = _models.get_pair(args.pair, args.batch_size)
    batches = _common.random_batches(pair.input_shape, pair.num_classes, pair.batch_size)
    steps = torch_variants(
        pair, set(args.variants.split(",")), batches, args.threads, args.run_decoders, prefix="t"
    )
    steps = {name.removeprefix("t_"): step for name, step in steps.items()}
    _common.serve_steps(steps, args.warmup)


if __name__ == "__main__":
    main()
