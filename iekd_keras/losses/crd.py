"""Contrastive representation distillation (Tian et al., ICLR 2020) with NCE memory banks."""

import math

import keras
from keras import ops

from iekd_keras.distribute import replicas
from iekd_keras.layers.initializers import pytorch_default_bias, pytorch_default_kernel
from iekd_keras.losses import _terms
from iekd_keras.losses import weights as loss_weights

# CRD's `eps` in `ContrastLoss` (RepDistiller `crd/criterion.py`).
NCE_EPSILON = 1e-7
_SAMPLER_STATE_KEY = "negative_sampler_state"


def _pooled(value):
    """Global average pooling of a feature map; a (batch, dim) tensor is used as is."""
    value = ops.cast(value, "float32")
    if len(value.shape) == 4:
        return ops.mean(value, axis=(1, 2))
    return ops.reshape(value, (ops.shape(value)[0], -1))


def _embedding_input_dim(shapes, key, role, term):
    shape = tuple(_terms.lookup(shapes, key, role, term))
    if len(shape) not in (2, 4):
        raise ValueError(
            f"{term}: the {role} output {key!r} has shape {shape}; expected a feature map "
            "(batch, height, width, channels), pooled globally, or a (batch, dim) vector."
        )
    if shape[-1] is None:
        raise ValueError(f"{term}: the {role} output {key!r} has an unknown last dimension.")
    return int(shape[-1])


@keras.saving.register_keras_serializable(package="iekd_keras")
class ContrastiveRepresentationDistillation(_terms.TermLayer):
    """CRD's NCE contrastive loss with student/teacher memory banks (docs/method.md#crd).

    Embeddings: v_s = normalize(W_s g(f_s) + b_s) and v_t = normalize(W_t g(f_t) + b_t), with
    g global average pooling of the `student_output` / `teacher_output` map, D-dim linear
    heads (both trainable, as in CRD; PyTorch's default Linear init) and L2 normalisation.
    Memory banks M_s, M_t (N x D, N = num_examples) hold one student and one teacher embedding
    per training example. For sample b with dataset index y_b, take y_b and K negatives
    j_1..j_K drawn uniformly from [0, N) WITH replacement (CRD's uniform `AliasMethod`; a draw
    may hit y_b itself), and with temperature tau:

        P^s_bk = exp(<M_t[idx_bk], v_s,b> / tau) / Z_s    (student anchor vs teacher memory)
        P^t_bk = exp(<M_s[idx_bk], v_t,b> / tau) / Z_t    (teacher anchor vs student memory)

    with idx_b0 = y_b (the positive) and idx_bk = j_k. Z_s, Z_t are set ONCE, from the first
    training batch: Z = N * mean_{b,k} exp(<., .> / tau) (over the global batch, no gradient).
    With c = K / N (K noise samples from the uniform noise P_n = 1/N) and eps = 1e-7:

        L_NCE(P) = -(1/B) sum_b [ log(P_b0 / (P_b0 + c + eps))
                                  + sum_{k>=1} log(c / (P_bk + c + eps)) ]
        L_CRD = beta * (L_NCE(P^s) + L_NCE(P^t))

    over the GLOBAL batch B (`replicas.mean_share`), in float32 (RepDistiller
    `crd/criterion.py` `ContrastLoss`, `crd/memory.py` `ContrastMemory`). After the loss, in a
    training step, the positives' rows are updated without gradient:

        M_s[y_b] = normalize(momentum * M_s[y_b] + (1 - momentum) * v_s,b), likewise M_t.

    Under a `tf.distribute` strategy every replica gathers the (index, embedding) pairs of all
    replicas and applies the same scatter to its own copy of the banks, so the copies stay
    equal; each replica draws its own negatives (one draw of shape (replicas, B, K) from the
    shared seed state, row `replica_id`).

    Differences from RepDistiller's CIFAR script: it draws the K negatives from examples of
    OTHER classes (`CIFAR100InstanceSample`, mode "exact"); this term draws them uniformly
    from all examples, as `ContrastMemory` does when given no `contrast_idx`.

    State: the banks, Z_s, Z_t, a flag telling whether they are set and the negative sampler's
    seed state are non-trainable variables, saved in `.keras` files and weight checkpoints
    (the sampler state through `save_own_variables`). The bank update assigns the whole bank
    (`ops.scatter_update`), which costs a copy of 2 * N * D floats per step.

    Needs the examples' dataset indices (`needs_indices = True`): feed `((images, indices),
    labels)` batches. Without indices (the Distiller's evaluation) the term is 0 and no state
    changes; with `training=False` the loss is computed but nothing is updated.

    Args:
        num_examples: N, the training-set size (one memory row per example); must exceed
            `num_negatives`.
        embedding_dim: D. Default 128.
        num_negatives: K. Default 16384.
        temperature: tau. Default 0.07.
        momentum: memory momentum. Default 0.5.
        beta: weight, a number >= 0 or a `LearningRateSchedule` of the step. Default 0.8.
        teacher_output: name of the teacher map to embed. Default "features".
        student_output: name of the student map to embed. Default "features".
        seed: integer seed of the memory initialisation and the negative sampler; None for a
            random one.
        name: name of the term. Default "crd_loss".

    Raises:
        ValueError: if `num_examples <= num_negatives` (the NCE noise term c = K / N would be
            >= 1), or an argument is out of range.

    Example:
        >>> crd = ContrastiveRepresentationDistillation(num_examples=50000)
        >>> distiller = Distiller(teacher, student, encoder, distillation_losses=[crd])
        >>> distiller.fit(dataset_of_images_and_indices_with_labels, epochs=240)
    """

    needs_indices = True

    def __init__(
        self,
        num_examples,
        embedding_dim=128,
        num_negatives=16384,
        temperature=0.07,
        momentum=0.5,
        beta=0.8,
        teacher_output="features",
        student_output="features",
        seed=None,
        name="crd_loss",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        term = "ContrastiveRepresentationDistillation"
        self.num_examples = _terms.check_count(term, "num_examples", num_examples, 2)
        self.embedding_dim = _terms.check_count(term, "embedding_dim", embedding_dim)
        self.num_negatives = _terms.check_count(term, "num_negatives", num_negatives)
        if self.num_examples <= self.num_negatives:
            raise ValueError(
                f"{term}: num_examples={self.num_examples} must be larger than "
                f"num_negatives={self.num_negatives}: each positive is contrasted with "
                "num_negatives examples drawn from the num_examples of the memory bank."
            )
        self.temperature = _terms.check_positive(term, "temperature", temperature)
        if isinstance(momentum, bool) or not isinstance(momentum, int | float):
            raise ValueError(f"{term}: momentum={momentum!r} must be a number in [0, 1).")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"{term}: momentum={momentum!r} must be in [0, 1).")
        self.momentum = float(momentum)
        self.beta = loss_weights.check_loss_weight("beta", beta)
        self.teacher_output = teacher_output
        self.student_output = student_output
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"{term}: seed={seed!r} must be an integer or None.")
        self.seed = seed
        self.student_head = None
        self.teacher_head = None
        self.seed_generator = None

    def _head(self, input_dim, name):
        head = keras.layers.Dense(
            self.embedding_dim,
            kernel_initializer=pytorch_default_kernel(),
            bias_initializer=pytorch_default_bias(input_dim),
            name=name,
        )
        head.build((None, input_dim))
        return head

    def _seed(self, offset):
        return None if self.seed is None else self.seed + offset

    def build(self, teacher_shapes, student_shapes):
        student_dim = _embedding_input_dim(
            student_shapes, self.student_output, "student", self.name
        )
        teacher_dim = _embedding_input_dim(
            teacher_shapes, self.teacher_output, "teacher", self.name
        )
        self.student_head = self._head(student_dim, "student_embedding")
        self.teacher_head = self._head(teacher_dim, "teacher_embedding")
        bound = 1.0 / math.sqrt(self.embedding_dim / 3.0)
        banks = {}
        for offset, side in enumerate(("student", "teacher")):
            banks[side] = self.add_weight(
                shape=(self.num_examples, self.embedding_dim),
                initializer=keras.initializers.RandomUniform(
                    -bound, bound, seed=self._seed(offset)
                ),
                trainable=False,
                dtype="float32",
                aggregation="none",
                name=f"{side}_memory",
            )
        self.student_memory, self.teacher_memory = banks["student"], banks["teacher"]
        self.student_normalizer = self._scalar("student_normalizer")
        self.teacher_normalizer = self._scalar("teacher_normalizer")
        self.normalizers_set = self._scalar("normalizers_set")
        self.seed_generator = keras.random.SeedGenerator(self._seed(2), name="negative_sampler")

    def _scalar(self, name):
        return self.add_weight(
            shape=(),
            initializer="zeros",
            trainable=False,
            dtype="float32",
            aggregation="none",
            name=name,
        )

    def _negatives(self, batch_size):
        """(batch, K) uniform draws in [0, N), independent across replicas."""
        draws = keras.random.randint(
            (replicas.replica_count(), batch_size, self.num_negatives),
            0,
            self.num_examples,
            dtype="int32",
            seed=self.seed_generator,
        )
        return ops.take(draws, replicas.replica_id(), axis=0)

    def _scores(self, memory, candidates, anchor):
        """exp(<memory[candidates], anchor> / tau): (batch, K + 1)."""
        rows = ops.take(ops.stop_gradient(ops.convert_to_tensor(memory)), candidates, axis=0)
        return ops.exp(ops.einsum("bkd,bd->bk", rows, anchor) / self.temperature)

    def _normalizer(self, variable, scores, training):
        """Z: the stored one once set, else N * the global mean of this batch's scores."""
        scores = ops.stop_gradient(scores)
        count = ops.shape(scores)[0] * ops.shape(scores)[1]
        mean = replicas.sum_over_replicas(ops.sum(scores)) / ops.maximum(
            replicas.sum_over_replicas(ops.cast(count, "float32")), 1.0
        )
        value = ops.where(
            self.normalizers_set > 0.5, ops.convert_to_tensor(variable), mean * self.num_examples
        )
        if training:
            variable.assign(value)
        return value

    def _nce(self, probabilities):
        """This replica's share of L_NCE over the global batch."""
        noise = self.num_negatives / self.num_examples
        positive = probabilities[:, 0]
        negatives = probabilities[:, 1:]
        log_positive = ops.log(positive / (positive + noise + NCE_EPSILON))
        log_negatives = ops.sum(ops.log(noise / (negatives + noise + NCE_EPSILON)), axis=1)
        per_sample = -(log_positive + log_negatives)
        return replicas.mean_share(ops.sum(per_sample), ops.shape(per_sample)[0])

    def _update_memory(self, memory, indices, embeddings):
        indices = replicas.all_gather(indices)
        embeddings = replicas.all_gather(embeddings)
        rows = ops.take(ops.convert_to_tensor(memory), indices, axis=0)
        rows = _terms.l2_normalize_rows(self.momentum * rows + (1.0 - self.momentum) * embeddings)
        memory.assign(
            ops.scatter_update(ops.convert_to_tensor(memory), ops.expand_dims(indices, 1), rows)
        )

    def embed(self, teacher_outputs, student_outputs):
        """(v_s, v_t): the L2-normalised float32 embeddings of this batch."""
        student_map = _terms.lookup(student_outputs, self.student_output, "student", self.name)
        teacher_map = _terms.lookup(teacher_outputs, self.teacher_output, "teacher", self.name)
        student = ops.cast(self.student_head(_pooled(student_map)), "float32")
        teacher = ops.cast(self.teacher_head(_pooled(teacher_map)), "float32")
        return _terms.l2_normalize_rows(student), _terms.l2_normalize_rows(teacher)

    def call(self, teacher_outputs, student_outputs, batch, training=None):
        indices = batch.get("indices")
        if indices is None:
            return ops.zeros((), "float32")
        training = self.resolve_training(batch, training)
        student, teacher = self.embed(teacher_outputs, student_outputs)
        indices = ops.reshape(ops.cast(indices, "int32"), (-1,))
        candidates = ops.concatenate(
            [ops.expand_dims(indices, 1), self._negatives(ops.shape(indices)[0])], axis=1
        )
        student_scores = self._scores(self.teacher_memory, candidates, student)
        teacher_scores = self._scores(self.student_memory, candidates, teacher)
        student_z = self._normalizer(self.student_normalizer, student_scores, training)
        teacher_z = self._normalizer(self.teacher_normalizer, teacher_scores, training)
        loss = self._nce(student_scores / student_z) + self._nce(teacher_scores / teacher_z)
        if training:
            self.normalizers_set.assign(ops.ones((), "float32"))
            self._update_memory(self.student_memory, indices, ops.stop_gradient(student))
            self._update_memory(self.teacher_memory, indices, ops.stop_gradient(teacher))
        return _terms.weight_now(self.beta, batch) * loss

    def save_own_variables(self, store):
        super().save_own_variables(store)
        if self.seed_generator is not None:
            store[_SAMPLER_STATE_KEY] = self.seed_generator.state

    def load_own_variables(self, store):
        keys = list(store.keys())
        super().load_own_variables({k: store[k] for k in keys if k != _SAMPLER_STATE_KEY})
        if _SAMPLER_STATE_KEY in keys and self.seed_generator is not None:
            self.seed_generator.state.assign(store[_SAMPLER_STATE_KEY])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_examples": self.num_examples,
                "embedding_dim": self.embedding_dim,
                "num_negatives": self.num_negatives,
                "temperature": self.temperature,
                "momentum": self.momentum,
                "beta": loss_weights.serialize_loss_weight(self.beta),
                "teacher_output": self.teacher_output,
                "student_output": self.student_output,
                "seed": self.seed,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        return loss_weights.from_config_with_weights(cls, config, ("beta",))
