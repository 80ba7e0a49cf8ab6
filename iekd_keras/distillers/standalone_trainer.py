"""Trains a (logits, features) model alone with cross-entropy: teachers and baseline students."""

import keras

from iekd_keras.distillers.model_checks import two_output_shapes
from iekd_keras.distillers.term_model import TermModel, cross_entropy_share, deserialized, serialize


@keras.saving.register_keras_serializable(package="iekd_keras")
class StandaloneTrainer(TermModel):
    """Supervised training of one two-output model, reported like the distillers.

    Used for stage 0 (the teacher) and for the student-alone baseline, so that every stage
    reports the same `loss`/`ce_loss` terms and saves the same kind of model.

    Args:
        model: functional model returning `[logits, features]`.

    Example:
        >>> trainer = StandaloneTrainer(get_model("resnet56"))
        >>> trainer.compile(optimizer=CoupledWeightDecaySGD(0.1), metrics=["accuracy"])
        >>> trainer.fit(train_dataset, epochs=160)
    """

    def __init__(self, model, **kwargs):
        super().__init__(term_names=["loss", "ce_loss"], **kwargs)
        two_output_shapes(model, "model")
        self.model = model
        self.built = True

    @property
    def checkpoint_model(self):
        """What a checkpoint of this stage holds: the trained two-output model."""
        return self.model

    def call(self, inputs, training=False):
        return self.model(inputs, training=training)[0]

    def compute_terms(self, x, y, training):
        if y is None:
            raise ValueError("StandaloneTrainer needs labelled batches: (inputs, labels).")
        logits = self.model(x, training=training)[0]
        ce_loss = cross_entropy_share(y, logits)
        return {"loss": ce_loss, "ce_loss": ce_loss}, logits

    def get_config(self):
        return {"name": self.name, "model": serialize(self.model)}

    @classmethod
    def from_config(cls, config):
        return cls(**deserialized(config, ("model",)))
