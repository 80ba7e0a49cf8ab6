"""The IE branch of a network, shared by the Distiller and the MutualDistiller.

A network's last feature map is split by channel (docs/method.md#the-channel-split), each part is
encoded to a factor by its own `FactorEncoder` (docs/method.md#the-factor-encoders), and both
factors are compared with one target factor: `D_p(F_inh, F_T)` and `-D_p(F_exp, F_T)`
(docs/method.md#factor-distances), added to the objective with weights `lambda_inh` and
`lambda_exp` (docs/method.md#the-objective).

The distillers keep the split, the encoders and the distances as their own attributes (where saved
`.keras` files find their variables); an `IEBranch` only groups them for a forward pass.
"""

from iekd_keras.layers import ExplorationLoss, FactorEncoder, InheritanceLoss
from iekd_keras.losses import weights as loss_weights


def distance_terms(p, metric):
    """The inheritance and exploration distances of order `p` under `metric` ("lp", "cosine").

    Example:
        >>> inheritance_loss, exploration_loss = distance_terms(1.0, "lp")
    """
    return (
        InheritanceLoss(p=p, metric=metric, name="inheritance"),
        ExplorationLoss(p=p, metric=metric, name="exploration"),
    )


def build_encoders(split, features, filters, synchronized=False, prefix=""):
    """Builds `split` for the feature shape `features`, then one `FactorEncoder` of `filters`
    channels per part, inheritance first (a fixed creation and initialisation order).

    Returns `(inheritance_encoder, exploration_encoder)`, named `{prefix}inheritance_encoder`
    and `{prefix}exploration_encoder`.

    Example:
        >>> split = FeatureSplit("natural", 0.5, name="feature_split")
        >>> inheritance_encoder, exploration_encoder = build_encoders(split, (None, 8, 8, 64), 32)
    """
    split.build(features)
    encoders = []
    for role, shape in zip(
        ("inheritance", "exploration"), split.compute_output_shape(features), strict=True
    ):
        encoder = FactorEncoder(filters, synchronized=synchronized, name=f"{prefix}{role}_encoder")
        encoder.build(shape)
        encoders.append(encoder)
    return tuple(encoders)


class IEBranch:
    """One network's split, two encoders and two distances, for one forward pass.

    Holds no variables of its own: its layers belong to the distiller that made them.

    Args:
        split: the network's `FeatureSplit`.
        inheritance_encoder, exploration_encoder: the `FactorEncoder` of each part.
        inheritance_loss, exploration_loss: the distances (see `distance_terms`).

    Example:
        >>> branch = IEBranch(split, *encoders, *distance_terms(1.0, "lp"))
        >>> inheritance, exploration = branch.factors(features, training=True)
        >>> inheritance_loss, exploration_loss = branch.terms(inheritance, exploration, target)
    """

    def __init__(
        self, split, inheritance_encoder, exploration_encoder, inheritance_loss, exploration_loss
    ):
        self.split = split
        self.inheritance_encoder = inheritance_encoder
        self.exploration_encoder = exploration_encoder
        self.inheritance_loss = inheritance_loss
        self.exploration_loss = exploration_loss

    def factors(self, features, training, exploration=True):
        """`(F_inh, F_exp)` of `features`; F_exp is None (its encoder does not run) when
        `exploration` is False."""
        inheritance_part, exploration_part = self.split(features)
        inheritance = self.inheritance_encoder(inheritance_part, training=training)
        if not exploration:
            return inheritance, None
        return inheritance, self.exploration_encoder(exploration_part, training=training)

    def terms(self, inheritance_factor, exploration_factor, target):
        """`(D_p(F_inh, target), -D_p(F_exp, target))`: this replica's shares of both terms."""
        return (
            self.inheritance_loss(inheritance_factor, target),
            self.exploration_loss(exploration_factor, target),
        )


def add_ie_terms(total, inheritance, exploration, lambda_inh, lambda_exp, step):
    """`total + lambda_inh * inheritance + lambda_exp * exploration`, the weights (numbers or
    schedules) read at optimizer step `step`; `exploration` is already negative."""
    total = total + loss_weights.loss_weight_at(lambda_inh, step) * inheritance
    return total + loss_weights.loss_weight_at(lambda_exp, step) * exploration
