"""Distill your own Keras classifier into a small student on your own images, and export it.

    python scripts/train.py --config=configs/image_folder.py --workdir=runs/mine \
        --config.data.directory=path/to/images --config.teacher.checkpoint=my_classifier.keras

- images: `data.directory` holds one sub-folder per class (`images/cats/*.jpg`, ...), split
  80/20 with a fixed seed, or `train/` and `test/` folders that do, used as they are. The
  classes are numbered in the alphabetical order of their folder names
  (`keras.utils.image_dataset_from_directory`'s order): the teacher's outputs must follow it
  (the teacher's test accuracy, checked before distillation, shows a mismatch). Images are
  read as RGB and resized to `data.image_size` (32) square; training reflect-pads them by 4,
  crops and flips them.
- teacher: `teacher.checkpoint`, a `.keras` classifier with one output (logits or softmax
  probabilities) that takes `(image_size, image_size, 3)` images (`--config.data.image_size`
  sets the size). Its feature map is the output of `teacher.feature_layer` (empty: the input
  of its global pooling, printed); `teacher.preprocessing` says what pixels it was trained on:
  "raw" 0-255 (the default here: the images as `image_dataset_from_directory` gives them, with
  any rescaling inside the model), "unit" [0, 1], "symmetric" [-1, 1], a keras.applications
  family (e.g. "mobilenet_v2") or "dataset" (the folder's own mean and std).
- student: ResNet-20 (`student.model`; any registry name, e.g. "resnet8" or "mobilenet"):
  0.27 M parameters, the usual small student of CIFAR distillation, about 1 MB as float32 and
  a third of that as int8. The CIFAR ResNets keep the input resolution in their first stage,
  so for images of 64 px and more take an ImageNet one ("resnet18").
- method: IE-KD (`get_config("ie_kd")`, the default): IE's inheritance and exploration terms
  (lambda 50 / 50, 32-channel factors from a 30-epoch factor auto-encoder) plus Hinton KD at
  T = 4, alpha 0.9 on the teacher's predictions, the one signal every classifier gives. Its
  objective is `methods.objective(get_config("ie_kd"))` (`iekd_keras.experiment.methods`);
  any method of `methods.apply_method` is a variant (`configs/image_folder.py:kd`). The
  teacher's factor is resized to the student's feature size where they differ.
- recipe: global batch 128, 160 student epochs, Nesterov SGD at LR 0.1, x0.1 after epochs 80
  and 120, weight decay 5e-4 (the paper's); a shorter run moves the milestones with the
  epochs: `--config.student.epochs=60 --config.teacher.epochs=60
  --config.optimizer.milestones="(30, 45)"` (the teacher's epochs, unused with a checkpoint,
  are checked against the milestones too). The same student is also trained alone
  (`baseline`), so the table at the end shows what distilling gave.
- export: every format of `export_formats` (SavedModel, LiteRT, int8 LiteRT, ONNX) is written
  to `<workdir>/export/` and checked in its own runtime against the Keras student on the test
  split (`export/report.json`, docs/export.md).

`data.directory` and `teacher.checkpoint` have no usable default: a run refuses their
placeholders with one sentence naming them. With `--config.teacher.checkpoint=` (empty) the run
trains `teacher.model` (ResNet-56) on the images first instead.

    python scripts/train.py --config=configs/image_folder.py:smoke --workdir=/tmp/mine \
        --config.data.directory=path/to/images --config.teacher.checkpoint=my_classifier.keras
"""

from iekd_keras.experiment.methods import apply_method, method_and_variant
from iekd_keras.experiment.recipes import apply_variant, base_config

# Placeholders of the two values only the user knows; a run refuses them with one sentence.
IMAGES = "<set --config.data.directory>"
TEACHER = "<set --config.teacher.checkpoint>"


def get_config(arg=None):
    """IE-KD of your classifier on your images (`arg`: a method, default "ie_kd", and/or
    "smoke" for 2-epoch stages)."""
    method, variant = method_and_variant(arg, default="ie_kd")
    config = base_config()
    config.data.name = "image_folder"
    config.data.directory = IMAGES
    config.data.image_size = 32
    config.teacher.checkpoint = TEACHER
    config.teacher.feature_layer = ""
    config.teacher.preprocessing = "raw"
    config.student.model = "resnet20"
    config.teacher.epochs = config.student.epochs = 160
    config.distiller.resize_teacher_factor = True
    config.export_formats = ("saved_model", "litert", "litert_int8", "onnx")
    apply_method(config, method)
    return apply_variant(config, variant)
