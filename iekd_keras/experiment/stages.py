"""The trainers each stage of a run constructs from its config, shared by `train` and
`preflight` so that the check before a run builds exactly what the run will build.

Example:
    >>> trainer = autoencoder_trainer(config, teacher)
    >>> distiller = student_distiller(config, teacher, student, trainer.autoencoder.encoder)
"""

from iekd_keras.distillers import Distiller, FactorAutoencoderTrainer, MutualDistiller
from iekd_keras.experiment.methods import build_distillation_losses
from iekd_keras.layers import FactorAutoencoder
from iekd_keras.models import with_taps


def tapped(model, taps):
    """The model with its named intermediate outputs added (one forward pass)."""
    return with_taps(model, list(taps)) if taps else model


def autoencoder_trainer(config, teacher):
    """Stage `autoencoder`: the teacher's factor auto-encoder, fitted by reconstruction."""
    return FactorAutoencoderTrainer(
        teacher,
        autoencoder=FactorAutoencoder(config.autoencoder.factor_channels, name="autoencoder"),
        reconstruction=config.autoencoder.reconstruction,
    )


def distillation_terms(config, num_train_examples):
    """The extra loss terms of `config.distillation_losses` (CRD gets the dataset size)."""
    return build_distillation_losses(config.get("distillation_losses", ()), num_train_examples)


def student_distiller(config, teacher, student, teacher_encoder, terms):
    """Stage `student`: the IE-KD Distiller over the tapped teacher and student."""
    return Distiller(
        tapped(teacher, config.teacher.get("taps", ())),
        tapped(student, config.student.get("taps", ())),
        teacher_encoder,
        distillation_losses=terms,
        **config.distiller.to_dict(),
    )


def mutual_distiller(config, peer1, peer2):
    """Stage `mutual` (method "dml"): both peers, with config.mutual and the split settings of
    config.distiller."""
    mutual = config.mutual
    return MutualDistiller(
        peer1,
        peer2,
        kl_weight=mutual.kl_weight,
        temperature=mutual.temperature,
        lambda_inh=mutual.lambda_inh,
        lambda_exp=mutual.lambda_exp,
        peer_factor=mutual.peer_factor,
        factor_channels=mutual.factor_channels,
        reconstruction=mutual.reconstruction,
        split_mode=config.distiller.split_mode,
        split_ratio=config.distiller.split_ratio,
        split_seed=config.distiller.split_seed,
        p=config.distiller.p,
        distance_metric=config.distiller.distance_metric,
        update=mutual.update_mode,
    )
