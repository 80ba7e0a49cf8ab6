"""The IE branch shared by both distillers: layers, factors, terms, weights and saved names."""

import itertools

import keras
import numpy as np
import pytest
from keras import ops

from iekd_keras import Distiller, MutualDistiller
from iekd_keras.distillers.ie_branch import IEBranch, add_ie_terms, build_encoders, distance_terms
from iekd_keras.layers import FactorAutoencoder, FeatureSplit

from .tiny_models import tiny_backbone

pytestmark = pytest.mark.backend_agnostic

FEATURES = (None, 4, 4, 6)


def make_branch(p=1.0, metric="lp"):
    split = FeatureSplit("natural", 0.5, name="split")
    encoders = build_encoders(split, FEATURES, 4, prefix="net_")
    return IEBranch(split, *encoders, *distance_terms(p, metric))


def test_build_encoders_names_and_shapes():
    branch = make_branch()
    assert branch.inheritance_encoder.name == "net_inheritance_encoder"
    assert branch.exploration_encoder.name == "net_exploration_encoder"
    # 3 of the 6 channels inherit: each encoder maps its 3 channels to the 4 factor channels.
    assert branch.inheritance_encoder.convs[0].kernel.shape == (3, 3, 3, 3)
    assert branch.exploration_encoder.convs[-1].kernel.shape == (3, 3, 4, 4)
    assert (branch.inheritance_loss.name, branch.exploration_loss.name) == (
        "inheritance",
        "exploration",
    )


def test_factors_and_terms_equal_the_layers_applied_by_hand():
    branch = make_branch(p=2.0)
    features = np.random.default_rng(0).normal(size=(2, 4, 4, 6)).astype("float32")
    target = np.random.default_rng(1).normal(size=(2, 4, 4, 4)).astype("float32")
    inheritance, exploration = branch.factors(features, training=False)
    part_inh, part_exp = features[..., :3], features[..., 3:]
    np.testing.assert_array_equal(
        ops.convert_to_numpy(inheritance),
        ops.convert_to_numpy(branch.inheritance_encoder(part_inh, training=False)),
    )
    np.testing.assert_array_equal(
        ops.convert_to_numpy(exploration),
        ops.convert_to_numpy(branch.exploration_encoder(part_exp, training=False)),
    )
    inheritance_loss, exploration_loss = branch.terms(inheritance, exploration, target)
    assert float(inheritance_loss) > 0 > float(exploration_loss)
    np.testing.assert_allclose(
        float(inheritance_loss), float(branch.inheritance_loss(inheritance, target)), rtol=0
    )
    only_inheritance, none = branch.factors(features, training=False, exploration=False)
    assert none is None
    np.testing.assert_array_equal(
        ops.convert_to_numpy(only_inheritance), ops.convert_to_numpy(inheritance)
    )


def test_add_ie_terms_weighs_both_terms_at_the_step():
    schedule = keras.optimizers.schedules.PolynomialDecay(0.0, 10, 4.0, power=1.0)
    total = add_ie_terms(1.0, 3.0, -5.0, 2.0, schedule, step=5)
    # 1 + 2 * 3 + (4 * 5 / 10) * (-5) = -3
    np.testing.assert_allclose(float(total), -3.0, rtol=1e-6)


def ie_layer_order(model):
    """The first name of each variable path, in `model.weights` order, without repeats."""
    names = [v.path.split("/")[0] for v in model.weights]
    return [name for name, _ in itertools.groupby(names)]


def test_distillers_keep_their_ie_layer_names_and_order():
    """Saved files find the IE layers by these names; `weights` lists them in this order."""
    teacher, student = tiny_backbone(name="teacher"), tiny_backbone(channels=6, name="student")
    autoencoder = FactorAutoencoder(4, name="teacher_autoencoder")
    autoencoder.build((None, 4, 4, 8))
    distiller = Distiller(teacher, student, autoencoder.encoder)
    assert ie_layer_order(distiller)[-3:] == [
        "teacher_autoencoder",
        "inheritance_encoder",
        "exploration_encoder",
    ]
    peers = tiny_backbone(name="peer_a"), tiny_backbone(channels=6, name="peer_b")
    mutual = MutualDistiller(*peers, factor_channels=4, lambda_inh=1.0, lambda_exp=1.0)
    assert ie_layer_order(mutual)[-6:] == [
        "peer1_inheritance_encoder",
        "peer2_inheritance_encoder",
        "peer1_exploration_encoder",
        "peer2_exploration_encoder",
        "peer1_autoencoder",
        "peer2_autoencoder",
    ]
    assert [split.name for split in mutual.feature_splits] == [
        "peer1_feature_split",
        "peer2_feature_split",
    ]
