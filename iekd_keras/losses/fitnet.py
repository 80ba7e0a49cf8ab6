"""FitNet hints (Romero et al., 2015): regress a student map onto a teacher map."""

import keras
from keras import ops

from iekd_keras.distribute import replicas
from iekd_keras.layers.factor_encoder import pytorch_batch_norm
from iekd_keras.layers.initializers import pytorch_default_bias, pytorch_default_kernel
from iekd_keras.losses import _terms
from iekd_keras.losses import weights as loss_weights


def _conv(filters, kernel_size, strides, fan_in, name, transpose=False):
    layer = keras.layers.Conv2DTranspose if transpose else keras.layers.Conv2D
    return layer(
        filters,
        kernel_size,
        strides=strides,
        padding="valid",
        kernel_initializer=pytorch_default_kernel(),
        bias_initializer=pytorch_default_bias(fan_in),
        name=name,
    )


def connector_layers(student_shape, teacher_shape, use_relu=True, synchronized=False):
    """The layers of RepDistiller's `ConvReg`, from the student and teacher map shapes.

    With (h_s, w_s, c_s) the student map and (h_t, w_t, c_t) the teacher map:
    - h_s = 2 h_t and w_s = 2 w_t: 3x3 conv, stride 2, one pixel of zero padding per side;
    - 2 h_s = h_t and 2 w_s = w_t: 4x4 transposed conv, stride 2, cropped by one pixel per side
      (PyTorch's `ConvTranspose2d(k=4, s=2, padding=1)`);
    - h_s >= h_t and w_s >= w_t: a "valid" conv of kernel (1 + h_s - h_t, 1 + w_s - w_t), i.e.
      a 1x1 conv for equal sizes;
    each to c_t channels with a bias, then BatchNorm (PyTorch momentum and epsilon) and, if
    `use_relu`, ReLU. Anything else raises a ValueError naming both shapes.
    """
    (_, s_h, s_w, s_c), (_, t_h, t_w, t_c) = student_shape, teacher_shape
    if s_h == 2 * t_h and s_w == 2 * t_w:
        layers = [
            keras.layers.ZeroPadding2D(1, name="pad"),
            _conv(t_c, 3, 2, 9 * s_c, name="conv"),
        ]
    elif 2 * s_h == t_h and 2 * s_w == t_w:
        # PyTorch's fan-in of a transposed conv weight (c_in, c_out, k, k) is c_out * k * k.
        layers = [
            _conv(t_c, 4, 2, 16 * t_c, name="conv", transpose=True),
            keras.layers.Cropping2D(1, name="crop"),
        ]
    elif s_h >= t_h and s_w >= t_w:
        kernel = (1 + s_h - t_h, 1 + s_w - t_w)
        layers = [_conv(t_c, kernel, 1, kernel[0] * kernel[1] * s_c, name="conv")]
    else:
        raise ValueError(
            f"FitNetHint: no connector maps the student map of shape {tuple(student_shape)} to "
            f"the teacher map of shape {tuple(teacher_shape)}: the student map must be twice, "
            "half, or at least as large as the teacher's in height and width."
        )
    layers.append(pytorch_batch_norm("bn", synchronized))
    if use_relu:
        layers.append(keras.layers.ReLU(name="relu"))
    return layers


@keras.saving.register_keras_serializable(package="iekd_keras")
class FitNetHint(_terms.TermLayer):
    """FitNet hint loss with a trainable connector (single-stage, RepDistiller).

    The method: docs/method.md#fitnet.

        L_FitNet = beta * (1/N) * sum (r(f_s) - f_t)^2,   N = B * H_t * W_t * C_t

    over the GLOBAL batch B, where f_s is the student's `student_output` map, f_t the teacher's
    `teacher_output` map and r the connector (regressor). The connector is RepDistiller's
    `ConvReg` (`models/util.py`): a conv chosen from the two shapes (3x3 stride 2 to halve,
    4x4 transposed stride 2 to double, else a "valid" conv of kernel
    (1 + h_s - h_t, 1 + w_s - w_t), i.e. 1x1 for equal sizes) mapping to the teacher's
    channels, then BatchNorm and ReLU (`use_relu`, RepDistiller's default; it matches the
    post-ReLU hint maps). Conv weights and biases use PyTorch's default init
    (U(+-1/sqrt(fan_in))). Standard: beta = 100 at the middle layer ("stage2"; RepDistiller
    `-b 100`, `hint_layer=2`). The connector is trained with the student; its BatchNorm uses
    batch statistics when `training` (from the argument, else `batch["training"]`, else True).
    Computed in float32; returns this replica's share (`replicas.mean_share`).

    Args:
        teacher_output: name of the teacher's hint map. Default "stage2".
        student_output: name of the student's guided map. Default "stage2".
        beta: weight, a number >= 0 or a `LearningRateSchedule` of the step. Default 100.
        use_relu: end the connector with a ReLU. Default True.
        synchronized: synchronise the connector's BatchNorm across replicas (TensorFlow only).
        name: name of the term. Default "fitnet_loss".

    Example:
        >>> teacher = with_taps(get_model("resnet56"), ["stage2"])
        >>> student = with_taps(get_model("resnet20"), ["stage2"])
        >>> Distiller(teacher, student, encoder, distillation_losses=[FitNetHint()])
    """

    def __init__(
        self,
        teacher_output="stage2",
        student_output="stage2",
        beta=100.0,
        use_relu=True,
        synchronized=False,
        name="fitnet_loss",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.teacher_output = teacher_output
        self.student_output = student_output
        self.beta = loss_weights.check_loss_weight("beta", beta)
        self.use_relu = bool(use_relu)
        self.synchronized = bool(synchronized)
        self.connector = None

    def build(self, teacher_shapes, student_shapes):
        teacher = _terms.feature_map_shape(
            teacher_shapes, self.teacher_output, "teacher", self.name
        )
        student = _terms.feature_map_shape(
            student_shapes, self.student_output, "student", self.name
        )
        self.connector = keras.Sequential(
            connector_layers(student, teacher, self.use_relu, self.synchronized),
            name="connector",
        )
        self.connector.build((None, *student[1:]))
        output_shape = tuple(self.connector.compute_output_shape((None, *student[1:])))
        if output_shape[1:] != tuple(teacher[1:]):  # pragma: no cover - guards the plan above
            raise ValueError(
                f"{self.name}: the connector maps {student} to {output_shape}, not {teacher}."
            )

    def call(self, teacher_outputs, student_outputs, batch, training=None):
        training = self.resolve_training(batch, training)
        student_map = _terms.lookup(student_outputs, self.student_output, "student", self.name)
        teacher_map = _terms.lookup(teacher_outputs, self.teacher_output, "teacher", self.name)
        regressed = ops.cast(self.connector(student_map, training=training), "float32")
        difference = regressed - ops.cast(teacher_map, "float32")
        shape = ops.shape(difference)
        count = shape[0] * shape[1] * shape[2] * shape[3]
        value = replicas.mean_share(ops.sum(ops.square(difference)), count)
        return _terms.weight_now(self.beta, batch) * value

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "teacher_output": self.teacher_output,
                "student_output": self.student_output,
                "beta": loss_weights.serialize_loss_weight(self.beta),
                "use_relu": self.use_relu,
                "synchronized": self.synchronized,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        return loss_weights.from_config_with_weights(cls, config, ("beta",))
