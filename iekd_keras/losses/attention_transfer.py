"""Attention transfer (Zagoruyko & Komodakis, 2017) between pairs of tapped feature maps."""

import keras
from keras import ops

from iekd_keras.distribute import replicas
from iekd_keras.losses import _terms
from iekd_keras.losses import weights as loss_weights

DEFAULT_PAIRS = (("stage1", "stage1"), ("stage2", "stage2"), ("stage3", "stage3"))


def attention_map(feature_map):
    """a(f): the channel mean of f^2, flattened over H*W and L2-normalised per sample.

    Args:
        feature_map: a (batch, height, width, channels) tensor.

    Returns:
        A float32 (batch, height * width) tensor whose rows have unit L2 norm.
    """
    squared = ops.square(ops.cast(feature_map, "float32"))
    energy = ops.mean(squared, axis=-1)
    flat = ops.reshape(energy, (ops.shape(energy)[0], -1))
    return _terms.l2_normalize_rows(flat)


def _pool_factors(larger, smaller):
    """Integer (height, width) factors from `larger` down to `smaller`, or None if not integer."""
    if larger[1] % smaller[1] or larger[2] % smaller[2]:
        return None
    return larger[1] // smaller[1], larger[2] // smaller[2]


def _average_pool(feature_map, factors):
    """Adaptive average pooling by integer factors: the mean over non-overlapping windows."""
    if factors == (1, 1):
        return feature_map
    fh, fw = factors
    _, height, width, channels = feature_map.shape
    windows = ops.reshape(feature_map, (-1, height // fh, fh, width // fw, fw, channels))
    return ops.mean(windows, axis=(2, 4))


def _pair_plan(teacher_shape, student_shape, term, pair):
    """Which side to pool and by which factors: ("teacher" | "student" | None, factors)."""
    t_size, s_size = tuple(teacher_shape[1:3]), tuple(student_shape[1:3])
    if t_size == s_size:
        return None, (1, 1)
    if s_size[0] >= t_size[0] and s_size[1] >= t_size[1]:
        side, factors = "student", _pool_factors(student_shape, teacher_shape)
    elif t_size[0] >= s_size[0] and t_size[1] >= s_size[1]:
        side, factors = "teacher", _pool_factors(teacher_shape, student_shape)
    else:
        side, factors = None, None
    if factors is None:
        raise ValueError(
            f"{term}: cannot pool the pair {pair} to a common spatial size: the teacher map has "
            f"shape {tuple(teacher_shape)} and the student map {tuple(student_shape)}; the larger "
            "height and width must both be integer multiples of the smaller ones."
        )
    return side, factors


@keras.saving.register_keras_serializable(package="iekd_keras")
class AttentionTransfer:
    """Attention transfer (AT), docs/method.md#at, on pairs of tapped feature maps.

    For a feature map f of shape (B, H, W, C), the attention map is

        a(f) = normalize_L2( (1/C) * sum_c f_c^2, flattened over H*W )     (per sample)

    and, with B the GLOBAL batch and HW the spatial size of each pair,

        L_AT = beta * sum_pairs (1/(B*HW)) * sum_{b,hw} (a(f_s) - a(f_t))^2

    exactly the formula of docs/method.md#at (RepDistiller `distiller_zoo/AT.py` with
    p = 2, weighted by `-b 1000` in its scripts). If a pair's spatial sizes differ, the larger
    FEATURE MAP is average-pooled down to the smaller before a(.) is taken (RepDistiller's
    `adaptive_avg_pool2d`), which here needs integer factors in height and width.
    Computed in float32; returns this replica's share (`replicas.mean_share`).

    Needs the tapped outputs in both models: wrap them with
    `iekd_keras.models.with_taps(model, ["stage1", "stage2", "stage3"])`.

    Args:
        pairs: sequence of (teacher_output, student_output) names; default the three stages.
        beta: weight, a number >= 0 or a `LearningRateSchedule` of the step. Default 1000.
        name: name of the term. Default "at_loss".

    Example:
        >>> teacher = with_taps(get_model("resnet56"), ["stage1", "stage2", "stage3"])
        >>> student = with_taps(get_model("resnet20"), ["stage1", "stage2", "stage3"])
        >>> Distiller(teacher, student, encoder, distillation_losses=[AttentionTransfer()])
    """

    def __init__(self, pairs=DEFAULT_PAIRS, beta=1000.0, name="at_loss"):
        pairs = [tuple(pair) for pair in pairs]
        if not pairs or any(
            len(pair) != 2 or not all(isinstance(n, str) for n in pair) for pair in pairs
        ):
            raise ValueError(
                f"AttentionTransfer: pairs={pairs!r} must be a non-empty sequence of "
                "(teacher_output, student_output) name pairs."
            )
        self.pairs = tuple(pairs)
        self.beta = loss_weights.check_loss_weight("beta", beta)
        self.name = name
        self.built = False

    def build(self, teacher_shapes, student_shapes):
        """Checks that every named map exists and that each pair can be pooled to one size."""
        for teacher_name, student_name in self.pairs:
            _pair_plan(
                _terms.feature_map_shape(teacher_shapes, teacher_name, "teacher", self.name),
                _terms.feature_map_shape(student_shapes, student_name, "student", self.name),
                self.name,
                (teacher_name, student_name),
            )
        self.built = True

    def pair_loss(self, teacher_map, student_map, pair=None):
        """This replica's share of mean_{B,HW} (a(f_s) - a(f_t))^2 for one pair (unweighted)."""
        side, factors = _pair_plan(teacher_map.shape, student_map.shape, self.name, pair)
        if side == "student":
            student_map = _average_pool(ops.cast(student_map, "float32"), factors)
        elif side == "teacher":
            teacher_map = _average_pool(ops.cast(teacher_map, "float32"), factors)
        difference = attention_map(student_map) - attention_map(teacher_map)
        count = ops.shape(difference)[0] * ops.shape(difference)[1]
        return replicas.mean_share(ops.sum(ops.square(difference)), count)

    def __call__(self, teacher_outputs, student_outputs, batch):
        total = 0.0
        for teacher_name, student_name in self.pairs:
            teacher_map = _terms.lookup(teacher_outputs, teacher_name, "teacher", self.name)
            student_map = _terms.lookup(student_outputs, student_name, "student", self.name)
            total = total + self.pair_loss(teacher_map, student_map, (teacher_name, student_name))
        return _terms.weight_now(self.beta, batch) * total

    def get_config(self):
        return {
            "pairs": [list(pair) for pair in self.pairs],
            "beta": loss_weights.serialize_loss_weight(self.beta),
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        return loss_weights.from_config_with_weights(cls, config, ("beta",))
