import pytest

from iekd_keras.layers import FactorAutoencoder

from .tiny_models import tiny_backbone


@pytest.fixture
def teacher():
    return tiny_backbone(channels=8, name="teacher")


@pytest.fixture
def student():
    return tiny_backbone(channels=6, name="student")


@pytest.fixture
def teacher_encoder(teacher):
    autoencoder = FactorAutoencoder(4, name="teacher_autoencoder")
    autoencoder.build(teacher.outputs[1].shape)
    return autoencoder.encoder
