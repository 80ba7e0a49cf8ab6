"""The teacher/student pairs and Keras trainers the benchmarks build (TensorFlow or JAX)."""

import dataclasses

PAIRS = {
    # The paper's main CIFAR pair (docs/method.md#teacher-and-student-pairs), option A, batch 128.
    "cifar": dict(
        teacher="resnet56",
        student="resnet20",
        input_shape=(32, 32, 3),
        num_classes=10,
        batch_size=128,
        eval_batch_size=256,
    ),
    # configs/quickstart.py: ResNet-20 -> ResNet-8 on 16x16 grey digits, batch 64.
    "quickstart": dict(
        teacher="resnet20",
        student="resnet8",
        input_shape=(16, 16, 1),
        num_classes=10,
        batch_size=64,
        eval_batch_size=256,
    ),
}


@dataclasses.dataclass
class Pair:
    name: str
    teacher: str
    student: str
    input_shape: tuple
    num_classes: int
    batch_size: int
    eval_batch_size: int


def get_pair(name, batch_size=None):
    spec = dict(PAIRS[name])
    if batch_size:
        spec["batch_size"] = batch_size
    return Pair(name=name, **spec)


def build_model(name, pair):
    from iekd_keras.models import get_model

    return get_model(name, num_classes=pair.num_classes, input_shape=pair.input_shape)


def teacher_encoder(factor_channels=32):
    """A teacher factor encoder as stage 1 leaves it (random weights: timing only)."""
    from iekd_keras.layers import FactorAutoencoder

    return FactorAutoencoder(factor_channels).encoder


def hinton_kd(temperature=4.0, alpha=0.9):
    """The library's `HintonKD` term; returns (term, "library") for the reports."""
    from iekd_keras.losses import HintonKD

    return HintonKD(temperature=temperature, alpha=alpha, name="kd_loss"), "library"


def optimizer(learning_rate=0.1):
    from iekd_keras import CoupledWeightDecaySGD

    return CoupledWeightDecaySGD(learning_rate)


def student_trainer(pair, jit_compile=False):
    from iekd_keras import StandaloneTrainer

    trainer = StandaloneTrainer(build_model(pair.student, pair))
    return trainer.compile(optimizer=optimizer(), metrics=["accuracy"], jit_compile=jit_compile)


def ie_distiller(pair, teacher, kd=False, jit_compile=False):
    """Distiller(teacher, fresh student, teacher encoder); with `kd`, + Hinton KD (IE-KD + KD:
    student_loss_weight 0.1, HintonKD(T=4, alpha=0.9)). Returns (distiller, kd_source)."""
    from iekd_keras import Distiller

    terms, source, weight = [], None, 1.0
    if kd:
        term, source = hinton_kd()
        terms, weight = [term], 0.1
    distiller = Distiller(
        teacher,
        build_model(pair.student, pair),
        teacher_encoder(),
        student_loss_weight=weight,
        distillation_losses=terms,
    )
    distiller.compile(optimizer=optimizer(), metrics=["accuracy"], jit_compile=jit_compile)
    return distiller, source


def teacher_inference_step(tf, teacher, iterator, jit_compile=False):
    """The teacher's forward pass in inference mode as one compiled function per batch: the
    share of an IE-KD step that the teacher itself costs."""

    @tf.function(jit_compile=jit_compile or None)
    def images_forward(batch_images):
        logits, _ = teacher(batch_images, training=False)[:2]
        return tf.reduce_sum(logits)

    @tf.function
    def run(data_iterator):
        return images_forward(next(data_iterator)[0])

    def step():
        return float(run(iterator))

    return step
