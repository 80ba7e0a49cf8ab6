"""sync_batchnorm: on for training, never recorded in a saved model."""

import json
import zipfile

import keras
import numpy as np

from iekd_keras import CoupledWeightDecaySGD, StandaloneTrainer
from iekd_keras.distribute.batchnorm_sync import batch_norm_layers, set_synchronized
from iekd_keras.experiment.callbacks import StageCheckpoint
from tests.distillers.tiny_models import tiny_backbone, tiny_batches


def saved_flags(path):
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
    text = json.dumps(config)
    return text.count('"synchronized": true'), text.count('"synchronized": false')


def test_synchronised_for_training_but_saved_without(tmp_path):
    model = tiny_backbone()
    trainer = StandaloneTrainer(model).compile(optimizer=CoupledWeightDecaySGD(0.05))
    assert set_synchronized([trainer], True) == 1
    assert all(layer.synchronized for layer in batch_norm_layers([model]))
    images, labels = tiny_batches(8)
    last = tmp_path / "last.keras"
    trainer.fit(images, labels, epochs=1, verbose=0, callbacks=[StageCheckpoint(str(last))])
    assert saved_flags(last) == (0, 1)
    assert all(layer.synchronized for layer in batch_norm_layers([model]))
    restored = keras.saving.load_model(last)
    np.testing.assert_allclose(restored(images)[0], model(images)[0], atol=1e-6)
