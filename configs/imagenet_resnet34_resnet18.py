"""ImageNet: ResNet-34 -> ResNet-18 with IE-KD, an ASSUMED recipe (docs/method.md#imagenet).

The released code has no ImageNet part. This follows the common recipe of comparable papers
(CRD, OD): 100 epochs, GLOBAL batch 256, Nesterov SGD 0.1 x0.1 at epochs 30/60/90, coupled
weight decay 1e-4; the teacher factor coder maps 512 -> 256 channels (FT's rate 0.5, an
assumption) and is pre-trained for 5 epochs (an assumption); lambda_inh = lambda_exp = 50. The
objective, written from the config's weights: `methods.objective(get_config())`
(`iekd_keras.experiment.methods`, docs/method.md#the-objective).
Assumes 8 GPUs (32 images each) under MirroredStrategy; the LR is NOT scaled by batch size.
The student learns from the teacher's best epoch on the validation set, from epoch 20 on (the
released CIFAR rule, an assumption here).

    python scripts/train.py --config=configs/imagenet_resnet34_resnet18.py \
        --workdir=runs/imagenet --config.data.manual_dir=/path/to/imagenet_tars

tensorflow-datasets cannot download ImageNet: put ILSVRC2012_img_train.tar and
ILSVRC2012_img_val.tar in `manual_dir`. Expected top-1 on GPUs: teacher 73-74%, baseline
ResNet-18 69.5-70.5%, IE-KD student 71-72% (the paper's summary quotes 28.19% error;
unverified). Run time: not measured.
"""

from iekd_keras.experiment.recipes import apply_variant, base_config


def get_config(arg=None):
    config = base_config()
    config.data.name = "imagenet2012"
    config.data.image_size = 224
    config.batch_size = 256
    config.eval_batch_size = 256
    config.optimizer.milestones = (30, 60, 90)
    config.optimizer.l2_decay = 1e-4
    config.teacher.model = "resnet34"
    config.teacher.epochs = 100
    config.autoencoder.factor_channels = 256
    config.autoencoder.epochs = 5
    config.student.model = "resnet18"
    config.student.epochs = 100
    return apply_variant(config, arg)
