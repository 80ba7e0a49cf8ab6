"""A PyTorch eager reference of one IE-KD training step, for bench/vs_torch.py only.

Written for this benchmark, following the STRUCTURE of the released IE-KD code
(docs/method.md#sources-and-conventions: `processors/IE_KD.py`, `model/resnet.py`,
`model/auto_encoder.py`, `loss/factor_transfer.py`) in the paper's naming (T = frozen teacher,
S = student; the released code swaps the names):

- backbones: the CIFAR ResNet of `model/resnet.py` (3x3 stem, three stages of basic blocks,
  option-A zero-pad shortcut or option-B 1x1 conv + BN), `forward` returning
  `(logits, feature)` with the feature the last stage's output before global average pooling;
- factor coders: `Coder(cin, cout)` = LeakyReLU(0.1), then 3 x [3x3 conv (no bias), BN,
  LeakyReLU(0.1)] with channels cin -> cin -> cout -> cout; `auto_encoder` = encoder + decoder;
- losses: per-sample flatten + L2 normalisation, D_1 = mean |F_s - F_t| (`NormLoss(p=1)`), the
  exploration term negated (`NormLoss(negative=True)`);
- one step (IE_KD.py stage 2): teacher and its encoder in eval mode under no_grad; the student
  forward in train mode; the feature split by channel 50/50 ("natural"); each half encoded by
  its own coder; loss = CE + 50 * D_1(F_inh, F_T) - 50 * D_1(F_exp, F_T); zero_grad, backward,
  one Nesterov SGD step (momentum 0.9, weight decay 5e-4) on the student and both encoders;
  `loss.item()` each step, as the released trainer logs it.

The released code calls the whole `auto_encoder` (encoder AND decoder) for the student's two
coders and for the teacher's, and uses only the factor; `run_decoders=True` reproduces that
wasted work, the default (False) does the same work as iekd_keras (encoders only).

torch is a benchmark-only dependency: install the CPU build (`pip install torch==2.13.0` from the
local wheel, or `--index-url https://download.pytorch.org/whl/cpu`).
"""

import torch
import torch.nn.functional as F
from torch import nn

# ----------------------------------------------------------------------------- backbones


def _kaiming_init(module):
    if isinstance(module, nn.Linear | nn.Conv2d):
        nn.init.kaiming_normal_(module.weight)


class LambdaLayer(nn.Module):
    def __init__(self, function):
        super().__init__()
        self.function = function

    def forward(self, x):
        return self.function(x)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes, planes, stride=1, option="A"):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            if option == "A":
                pad = planes // 4
                self.shortcut = LambdaLayer(
                    lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, pad, pad), "constant", 0)
                )
            else:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                    nn.BatchNorm2d(planes),
                )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = out + self.shortcut(x)
        return F.relu(out)


class ResNet(nn.Module):
    """CIFAR ResNet returning (logits, feature), as the released `model/resnet.py`."""

    def __init__(self, num_blocks, num_classes=10, in_channels=3, option="A"):
        super().__init__()
        self.in_planes = 16
        self.option = option
        self.conv1 = nn.Conv2d(in_channels, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._make_layer(16, num_blocks, 1)
        self.layer2 = self._make_layer(32, num_blocks, 2)
        self.layer3 = self._make_layer(64, num_blocks, 2)
        self.linear = nn.Linear(64, num_classes)
        self.apply(_kaiming_init)

    def _make_layer(self, planes, count, stride):
        layers = []
        for block_stride in [stride] + [1] * (count - 1):
            layers.append(BasicBlock(self.in_planes, planes, block_stride, self.option))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer1(out)
        out = self.layer2(out)
        feature = self.layer3(out)
        out = F.avg_pool2d(feature, feature.size()[3])
        out = out.view(out.size(0), -1)
        return self.linear(out), feature


def resnet(depth, num_classes=10, in_channels=3, option="A"):
    if (depth - 2) % 6:
        raise ValueError(f"depth={depth} must satisfy (depth - 2) % 6 == 0.")
    return ResNet((depth - 2) // 6, num_classes, in_channels, option)


# ----------------------------------------------------------------------------- factor coders


class Coder(nn.Module):
    """`model/auto_encoder.py` Coder with use_bn=True."""

    def __init__(self, cin, cout):
        super().__init__()
        self.net = nn.Sequential(
            nn.LeakyReLU(0.1),
            nn.Conv2d(cin, cin, 3, padding=1, bias=False),
            nn.BatchNorm2d(cin),
            nn.LeakyReLU(0.1),
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.LeakyReLU(0.1),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.LeakyReLU(0.1),
        )
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
                module.weight.data.normal_(0, (2.0 / fan_out) ** 0.5)
            elif isinstance(module, nn.BatchNorm2d):
                module.weight.data.fill_(1)
                module.bias.data.zero_()

    def forward(self, x):
        return self.net(x)


class AutoEncoder(nn.Module):
    """`auto_encoder(cin, cout)`: forward returns (factor, reconstruction)."""

    def __init__(self, cin, cout, run_decoder=True):
        super().__init__()
        self.encoder = Coder(cin, cout)
        self.decoder = Coder(cout, cin)
        self.run_decoder = run_decoder

    def forward(self, x):
        factor = self.encoder(x)
        return factor, (self.decoder(factor) if self.run_decoder else None)


# ----------------------------------------------------------------------------- losses


def _flat_normalize(x):
    return F.normalize(x.view(x.size(0), -1))


class NormLoss(nn.Module):
    """`loss/factor_transfer.py` NormLoss: (mean |n(s) - n(t)|^p)^(1/p), negated if asked."""

    def __init__(self, p=1, negative=False):
        super().__init__()
        self.p = p
        self.negative = negative

    def forward(self, student_factor, teacher_factor):
        difference = _flat_normalize(student_factor) - _flat_normalize(teacher_factor)
        loss = difference.abs().pow(self.p).mean().pow(1.0 / self.p)
        return -loss if self.negative else loss


# ----------------------------------------------------------------------------- steps


def sgd(parameters, lr=0.1):
    return torch.optim.SGD(parameters, lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)


class IEKDStep:
    """One IE-KD training step of `processors/IE_KD.py` (stage 2), in the paper's naming."""

    def __init__(
        self,
        teacher,
        student,
        factor_channels=32,
        lambda_inh=50.0,
        lambda_exp=50.0,
        run_decoders=False,
        lr=0.1,
    ):
        self.teacher = teacher.eval()
        teacher_channels = teacher.layer3[-1].conv2.out_channels
        student_channels = student.layer3[-1].conv2.out_channels
        self.teacher_embed = AutoEncoder(
            teacher_channels, factor_channels, run_decoder=run_decoders
        ).eval()
        for parameter in [*self.teacher.parameters(), *self.teacher_embed.parameters()]:
            parameter.requires_grad_(False)
        self.student = student.train()
        self.split = student_channels // 2
        self.embed_inh = AutoEncoder(self.split, factor_channels, run_decoder=run_decoders)
        self.embed_exp = AutoEncoder(
            student_channels - self.split, factor_channels, run_decoder=run_decoders
        )
        self.embed_inh.train()
        self.embed_exp.train()
        self.inheritance_loss = NormLoss(p=1)
        self.exploration_loss = NormLoss(p=1, negative=True)
        self.lambda_inh = lambda_inh
        self.lambda_exp = lambda_exp
        self.optimizer = sgd(
            [
                *self.student.parameters(),
                *self.embed_inh.parameters(),
                *self.embed_exp.parameters(),
            ],
            lr=lr,
        )

    def __call__(self, images, labels):
        with torch.no_grad():
            _, teacher_feature = self.teacher(images)
            teacher_factor, _ = self.teacher_embed(teacher_feature)
        logits, feature = self.student(images)
        inheritance_factor, _ = self.embed_inh(feature[:, : self.split])
        exploration_factor, _ = self.embed_exp(feature[:, self.split :])
        ce = F.cross_entropy(logits, labels)
        inheritance = self.inheritance_loss(inheritance_factor, teacher_factor)
        exploration = self.exploration_loss(exploration_factor, teacher_factor)
        loss = ce + self.lambda_inh * inheritance + self.lambda_exp * exploration
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss.item()


class StudentStep:
    """The student alone: CE, one SGD step (the released `processors/base.py` loop)."""

    def __init__(self, student, lr=0.1):
        self.student = student.train()
        self.optimizer = sgd(self.student.parameters(), lr=lr)

    def __call__(self, images, labels):
        logits, _ = self.student(images)
        loss = F.cross_entropy(logits, labels)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss.item()


class TeacherInference:
    """The teacher forward in eval mode under no_grad (the teacher's share of an IE-KD step)."""

    def __init__(self, teacher):
        self.teacher = teacher.eval()

    def __call__(self, images, labels=None):
        with torch.no_grad():
            logits, _ = self.teacher(images)
        return float(logits[0, 0])
