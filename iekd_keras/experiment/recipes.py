"""Config building blocks: every key a run reads, with the paper's defaults.

The recipe and each option's source: docs/method.md#training-recipe and
docs/method.md#config-options.
"""

import ml_collections
from ml_collections.config_dict import placeholder


def base_config():
    """All keys of an experiment config, set to the paper's CIFAR recipe; locked.

    The config is locked and type-safe: setting a key it does not have, or a value of another
    type, raises (an int is taken for a float, a list for a tuple). Optional keys are typed
    placeholders (`placeholder(float)`): None until set, and settable from the command line
    (`--config.teacher.min_accuracy=0.5`).

    Teacher and student: 160 epochs, global batch 128, Nesterov SGD (momentum 0.9) at LR 0.1,
    x0.1 at epochs 80 and 120, coupled weight decay 5e-4. Auto-encoder: 30 epochs at a
    constant 0.1. IE: lambda_inh = lambda_exp = 50, p = 1, natural 50/50 split, 32-channel
    factors, L1 reconstruction. The student learns from the teacher's best test-accuracy
    epoch, counted from epoch 20 (`teacher.select`), as the released code does.

    Example:
        >>> config = base_config()
        >>> config.teacher.select, config.teacher.select_from_epoch
        ('best', 20)
    """
    config = ml_collections.ConfigDict()
    # The method's name in reports ("" derives it from the config, e.g. "IE-KD", "DML").
    config.label = ""
    config.seed = 0
    # Op determinism (TensorFlow): True, False, or None for "on for a CPU run without XLA, off
    # on GPUs" (distribute.strategies.resolve_determinism; every run prints its choice).
    config.deterministic = placeholder(bool)
    config.data = ml_collections.ConfigDict(
        {
            "name": "cifar10",
            "image_size": 32,
            "data_dir": placeholder(str),
            "manual_dir": placeholder(str),
            "directory": placeholder(str),
            "augmentation": (),
        }
    )
    config.batch_size = 128
    config.eval_batch_size = 256
    # Strategy: "auto" (MirroredStrategy over several GPUs), "mirrored", "multi_worker"
    # (TF_CONFIG), "one_device". batch_size is the GLOBAL batch, split across replicas.
    config.distribution = "auto"
    # "float32", "mixed_bfloat16" or "mixed_float16" (loss scaling); losses stay float32.
    config.precision = "float32"
    config.jit_compile = False
    # Synchronise every training BatchNorm across replicas (TensorFlow only; checkpoints are
    # always saved unsynchronised so that they load on any backend).
    config.sync_batchnorm = False
    config.verbose = 1
    config.optimizer = ml_collections.ConfigDict(
        {
            "learning_rate": 0.1,
            "momentum": 0.9,
            "nesterov": True,
            "l2_decay": 5e-4,
            "milestones": (80, 120),
            "gamma": 0.1,
            # Linear LR scaling: learning_rate * batch_size / scale_reference_batch_size for
            # every stage (None: the learning rates are used as given).
            "scale_reference_batch_size": placeholder(int),
        }
    )
    config.teacher = ml_collections.ConfigDict(
        {
            "model": "resnet56b",
            "checkpoint": "",
            "epochs": 160,
            # The teacher's own weight decay when it differs (None: optimizer.l2_decay).
            "l2_decay": placeholder(float),
            # The sanity gate: the least test accuracy a teacher needs before distillation
            # (None: twice chance, i.e. 2 / num_classes); skip_sanity_check disables it.
            "min_accuracy": placeholder(float),
            "skip_sanity_check": False,
            # Intermediate outputs to tap by layer name (e.g. "stage1"), for AT and FitNet.
            "taps": (),
            # Which trained teacher the student learns from, as the released code does it:
            # "best" is the first epoch of the highest test accuracy (best.keras), which must
            # come at epoch >= select_from_epoch (the release keeps its best checkpoint only
            # from its save interval, epoch 20, on); "last" is the final epoch (last.keras).
            # Ignored when `checkpoint` is given.
            "select": "best",
            "select_from_epoch": 20,
            # A plain one-output classifier as `checkpoint` (experiment.given_teacher): the layer
            # giving its feature map ("": the input of its global pooling) and the input it
            # expects: "dataset" normalisation, "unit" [0, 1], "symmetric" [-1, 1], "raw" 0-255,
            # or a keras.applications family (e.g. "resnet_v2").
            "feature_layer": "",
            "preprocessing": "dataset",
        }
    )
    config.autoencoder = ml_collections.ConfigDict(
        {"factor_channels": 32, "epochs": 30, "learning_rate": 0.1, "reconstruction": "l1"}
    )
    config.student = ml_collections.ConfigDict({"model": "resnet20b", "epochs": 160, "taps": ()})
    # Extra distillation terms (IE-X): entries {"type": "kd" | "at" | "fitnet" | "ft" | "crd",
    # "kwargs": {...}}; see iekd_keras.experiment.methods.apply_method for the standard set-ups.
    config.distillation_losses = ()
    config.distiller = ml_collections.ConfigDict(
        {
            "lambda_inh": 50.0,
            "lambda_exp": 50.0,
            "student_loss_weight": 1.0,
            "split_mode": "natural",
            "split_ratio": 0.5,
            "split_seed": 0,
            "p": 1.0,
            "distance_metric": "lp",
            # Resize the teacher factor to the student's feature size where they differ
            # (Distiller(resize_teacher_factor=...)); False: a mismatch is refused before training.
            "resize_teacher_factor": False,
        }
    )
    config.baseline = True
    config.export = True
    # What `export` writes to <workdir>/export/, each verified on the test split: "saved_model",
    # "litert", "litert_int8", "onnx" (experiment.export.FORMATS; ONNX needs the export extra).
    config.export_formats = ("saved_model",)
    # "ie_kd": teacher -> auto-encoder -> student (+ baseline). "dml": two peers trained
    # together from scratch (config.mutual; IE-DML when its lambdas are non-zero), using the
    # split and distance settings of config.distiller.
    config.method = "ie_kd"
    config.mutual = ml_collections.ConfigDict(
        {
            "peer1": "resnet32",
            "peer2": "resnet32",
            "epochs": 200,
            "kl_weight": 1.0,
            "temperature": 1.0,
            "lambda_inh": 0.0,
            "lambda_exp": 0.0,
            "peer_factor": "autoencoder",
            "factor_channels": 32,
            "reconstruction": "l1",
            "update_mode": "alternating",
            "export_peer": 1,
        }
    )
    config.lock()
    return config


def paper_dml(dataset, peer1, peer2, ie, arg=None):
    """The DML recipe of the released configs (docs/method.md#ie-dml): batch 64, 200 epochs, LR 0.1
    x0.1 at 60/120/180, Nesterov, weight decay 5e-4, KL weight 1, T = 1; with `ie`, IE-DML
    with lambda_inh = lambda_exp = 50 against the peer's online auto-encoder factor.

    `peer1` is the released yaml's `teacher` (updated first in each step), `peer2` its
    `student`; shortcut-B ResNets take the "b" names ("resnet32b").

    Example:
        >>> paper_dml("cifar100", "resnet56b", "resnet32b", ie=False).mutual.peer1
        'resnet56b'
    """
    config = base_config()
    config.method = "dml"
    config.data.name = dataset
    config.batch_size = 64
    config.optimizer.milestones = (60, 120, 180)
    config.mutual.peer1 = peer1
    config.mutual.peer2 = peer2
    config.teacher.epochs = config.student.epochs = config.mutual.epochs = 200
    if ie:
        config.mutual.lambda_inh = config.mutual.lambda_exp = 50.0
    apply_variant(config, arg)
    if arg == "smoke":
        config.mutual.epochs = 2
    return config


def digits_quickstart():
    """The quickstart recipe: ResNet-20 teacher -> ResNet-8 student on 16x16 digits, global
    batch 64, 15 epochs (LR x0.1 at 8 and 12), a 5-epoch auto-encoder, IE with 50/50.

    The student learns from the last teacher: 15 epochs end before epoch 20, where the
    released code starts keeping a best checkpoint.
    """
    config = base_config()
    config.data.name = "digits"
    config.data.image_size = 16
    config.batch_size = 64
    config.verbose = 2
    config.optimizer.milestones = (8, 12)
    config.teacher.model = "resnet20"
    config.teacher.epochs = 15
    config.teacher.select = "last"
    config.autoencoder.epochs = 5
    config.student.model = "resnet8"
    config.student.epochs = 15
    return config


# Hinton KD settings of the released yaml of each dataset: config/kd/cifar10/resnet56-20.yaml
# (alpha 0.95, T 20) and config/kd/cifar100/resnet110-32B.yaml (alpha 0.9, T 4). Pairs without
# a KD yaml of their own take their dataset's.
RELEASED_KD = {
    "cifar10": {"temperature": 20.0, "alpha": 0.95},
    "cifar100": {"temperature": 4.0, "alpha": 0.9},
}


def paper_cifar(dataset, teacher, student, arg=None):
    """The paper's CIFAR recipe for one teacher/student pair.

    `arg` is a comma-separated list of one method of `iekd_keras.experiment.methods` ("ie", the
    default, "kd", "ie_kd", "at", "ie_at", "ft", "ie_ft", "fitnet", "crd", "ie_crd") and "smoke". KD
    takes the released settings of the dataset (`RELEASED_KD`).

    Example:
        >>> config = paper_cifar("cifar10", "resnet56b", "resnet20b", "kd")
        >>> config.distillation_losses[0]["kwargs"]
        {'temperature': 20.0, 'alpha': 0.95}
    """
    from iekd_keras.experiment.methods import apply_method, method_and_variant

    config = base_config()
    config.data.name = dataset
    config.teacher.model = teacher
    config.student.model = student
    method, variant = method_and_variant(arg)
    apply_method(config, method, kd=RELEASED_KD[dataset])
    apply_variant(config, variant)
    return config


def apply_variant(config, arg):
    """`smoke`: 2 epochs per stage (1 for the auto-encoder) with an LR drop after epoch 1,
    no teacher sanity gate (a 2-epoch teacher is not meant to be good), and the teacher's
    best epoch counted from epoch 1."""
    if arg == "smoke":
        config.teacher.skip_sanity_check = True
        config.teacher.select_from_epoch = 1
        config.teacher.epochs = config.student.epochs = 2
        config.autoencoder.epochs = 1
        config.optimizer.milestones = (1,)
    elif arg:
        raise ValueError(f"Unknown config variant {arg!r}; expected 'smoke' or nothing.")
    return config
