"""LeNet-5 (LeCun, Bottou, Bengio, Haffner 1998): the common modern version and the paper's own.

`lenet5` is the network textbooks and tutorials call LeNet-5 today: full C3, max (or average)
pooling, ReLU (or tanh), a linear output layer; 61,706 parameters on 1x32x32. `lenet5_1998`
follows Section II-B of the paper: trainable subsampling, the partial C3 of Table I, the scaled
tanh of Appendix A and Euclidean RBF outputs with fixed 7x12 bitmap centres (Fig. 3); exactly
60,000 trainable parameters.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.models.base import Classifier
from cnnlab.models.registry import register_model
from cnnlab.nn import ConvNormAct, PoolMode, pool

PAPER = "LeCun, Bottou, Bengio, Haffner: Gradient-Based Learning Applied to Document Recognition"

# Table I of the paper: row = S2 map (0-5), column = C3 map (0-15), X = connected.
C3_TABLE = (
    "X---XXX--XXXX-XX",
    "XX---XXX--XXXX-X",
    "XXX---XXX--X-XXX",
    "-XXX--XXXX--X-XX",
    "--XXX--XXXX-XX-X",
    "---XXX--XXXX-XXX",
)

# Our own stylised 7-wide, 12-high digits in the spirit of Fig. 3 ("#" ink = +1, "." = -1).
DIGIT_BITMAPS = (
    (".......", "..###..", ".#...#.", "#.....#", "#.....#", "#.....#",
     "#.....#", "#.....#", "#.....#", ".#...#.", "..###..", "......."),
    (".......", "...#...", "..##...", ".#.#...", "...#...", "...#...",
     "...#...", "...#...", "...#...", "...#...", ".#####.", "......."),
    (".......", ".#####.", "#.....#", "......#", "......#", ".....#.",
     "...##..", "..#....", ".#.....", "#......", "#######", "......."),
    (".......", "#######", ".....#.", "....#..", "...#...", "..###..",
     ".....#.", "......#", "......#", "#.....#", ".#####.", "......."),
    (".......", "....##.", "...#.#.", "..#..#.", ".#...#.", "#....#.",
     "#######", ".....#.", ".....#.", ".....#.", ".....#.", "......."),
    (".......", "#######", "#......", "#......", "######.", "......#",
     "......#", "......#", "......#", "#.....#", ".#####.", "......."),
    (".......", "..####.", ".#.....", "#......", "#......", "######.",
     "#.....#", "#.....#", "#.....#", "#.....#", ".#####.", "......."),
    (".......", "#######", "......#", ".....#.", "....#..", "...#...",
     "...#...", "..#....", "..#....", "..#....", "..#....", "......."),
    (".......", ".#####.", "#.....#", "#.....#", "#.....#", ".#####.",
     "#.....#", "#.....#", "#.....#", "#.....#", ".#####.", "......."),
    (".......", ".#####.", "#.....#", "#.....#", "#.....#", "#.....#",
     ".######", "......#", "......#", ".....#.", ".####..", "......."),
)  # fmt: skip


def c3_connections() -> tuple[tuple[int, ...], ...]:
    """Return, for each of the 16 C3 maps, the S2 maps it reads (Table I read by column)."""
    return tuple(tuple(row for row, line in enumerate(C3_TABLE) if line[col] == "X") for col in range(16))


def digit_centres(num_classes: int = 10) -> torch.Tensor:
    """Return the RBF centres (num_classes, 84): the +-1 bitmaps of digits 0..num_classes-1."""
    rows = ["".join(bitmap) for bitmap in DIGIT_BITMAPS[:num_classes]]
    return torch.tensor([[1.0 if c == "#" else -1.0 for c in row] for row in rows])


@dataclass(frozen=True)
class LeNet5Config:
    """The modern LeNet-5: which pooling and which activation."""

    pool: PoolMode = PoolMode.MAX  # 2x2 stride-2 pooling after each conv
    act_layer: type[nn.Module] = nn.ReLU  # nn.Tanh for the 1990s flavour
    # Channels of conv1 and conv2 and widths of fc1 and fc2: LeNet-5's are 6, 16, 120, 84.
    widths: tuple[int, int, int, int] = (6, 16, 120, 84)
    # Dropout after fc1 and fc2 (Srivastava et al. 2014); 0 adds no layer, so LeNet-5 stays as published.
    dropout: float = 0.0
    # BatchNorm after each conv (Ioffe & Szegedy 2015); None keeps LeNet-5 as published.
    norm_layer: type[nn.Module] | None = None


class LeNet5(Classifier):
    """conv 6@5x5 - pool - conv 16@5x5 - pool - FC 120 - FC 84 - FC num_classes, full C3."""

    classifier_path = "fc3"
    stage_names = ("conv1", "conv2")

    def __init__(self, config: LeNet5Config, num_classes: int = 10, in_chans: int = 1) -> None:
        super().__init__()
        self.num_classes = num_classes
        c1, c2, f1, f2 = config.widths
        self.num_features = c2
        self.conv1 = ConvNormAct(in_chans, c1, 5, padding=0, norm_layer=config.norm_layer, act_layer=config.act_layer)
        self.pool1 = pool(config.pool, 2)
        self.conv2 = ConvNormAct(c1, c2, 5, padding=0, norm_layer=config.norm_layer, act_layer=config.act_layer)
        self.pool2 = pool(config.pool, 2)
        self.fc1 = nn.Linear(c2 * 5 * 5, f1)
        self.fc2 = nn.Linear(f1, f2)
        self.fc3 = nn.Linear(f2, num_classes)
        self.act_fc1 = config.act_layer()
        self.act_fc2 = config.act_layer()
        if config.dropout:
            self.drop = nn.Dropout(config.dropout)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Return the pooled conv2 map (B, 16, 5, 5) for a 32x32 input."""
        x = self.pool1(self.conv1(x))  # (B, c1, 14, 14)
        return self.pool2(self.conv2(x))  # (B, c2, 5, 5)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits from the three fully connected layers."""
        x = x.flatten(1)  # (B, c2 * 25)
        drop = getattr(self, "drop", None)
        x = self.act_fc1(self.fc1(x))
        x = x if drop is None else drop(x)
        x = self.act_fc2(self.fc2(x))
        x = x if drop is None else drop(x)
        return self.fc3(x)


class ScaledTanh(nn.Module):
    """The squashing function f(a) = A tanh(S a), A = 1.7159, S = 2/3 (Appendix A): f(+-1) = +-1."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return 1.7159 tanh(2x/3)."""
        return 1.7159 * torch.tanh(x * (2.0 / 3.0))


class TrainableSubsampling(nn.Module):
    """S2 / S4: the sum of each 2x2 window times a trainable coefficient plus a bias, per map."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return coefficient * (2x2 sum) + bias, (B, C, H/2, W/2)."""
        sums = F.avg_pool2d(x, 2) * 4  # sum of the four inputs of each window
        return sums * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class PartialConv2d(nn.Module):
    """A convolution whose output maps each read a subset of the input maps (C3, Table I).

    Output maps with the same fan-in share one grouped convolution over their gathered inputs,
    so the layer holds exactly the paper's kernels (60 for C3) and costs exactly its MACs.
    """

    def __init__(self, connections: tuple[tuple[int, ...], ...], kernel_size: int) -> None:
        super().__init__()
        self.connections = connections
        fan_ins = sorted({len(inputs) for inputs in connections})
        outputs = [[k for k, inputs in enumerate(connections) if len(inputs) == n] for n in fan_ins]
        gather = [i for group in outputs for k in group for i in connections[k]]
        order = torch.tensor([k for group in outputs for k in group])
        self.register_buffer("gather", torch.tensor(gather), persistent=False)
        self.register_buffer("inverse", torch.argsort(order), persistent=False)
        self.splits = [n * len(group) for n, group in zip(fan_ins, outputs, strict=True)]
        self.convs = nn.ModuleList(
            nn.Conv2d(n * len(group), len(group), kernel_size, groups=len(group))
            for n, group in zip(fan_ins, outputs, strict=True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the (B, len(connections), H - k + 1, W - k + 1) map."""
        x = x.index_select(1, self.gather)  # (B, total fan-in, H, W), grouped by fan-in
        parts = [conv(chunk) for conv, chunk in zip(self.convs, x.split(self.splits, dim=1), strict=True)]
        return torch.cat(parts, dim=1).index_select(1, self.inverse)  # back to the paper's order


class EuclideanRBF(nn.Module):
    """Output layer (Sec. II-B): y_i = sum_j (x_j - w_ij)^2 with fixed +-1 centres w (a buffer)."""

    def __init__(self, centres: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("centres", centres)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the penalties (B, num_classes): lower means closer to that class's bitmap."""
        diff = x.unsqueeze(1) - self.centres  # (B, num_classes, 84)
        return diff.square().sum(dim=-1)


def _squashed(layer: nn.Module) -> nn.Sequential:
    """Return `layer` followed by the squashing function, as `.layer` and `.act`."""
    return nn.Sequential(OrderedDict(layer=layer, act=ScaledTanh()))


class LeNet5Original(Classifier):
    """C1 - S2 - C3 (Table I) - S4 - C5 - F6 - RBF, every layer up to F6 squashed by f.

    The paper's outputs are RBF penalties (lower is better); forward returns logits = -penalty
    so that argmax picks the nearest bitmap, as the classifier contract expects, and
    cross-entropy on them is the paper's discriminative criterion (Sec. II-C) without the
    rubbish-class constant j. The classifier is the RBF layer, not a Linear: its centres are
    fixed bitmaps, so reset_classifier(n) keeps those of digits 0..n-1 and refuses n > 10.
    """

    classifier_path = "output"
    stage_names = ("c1", "s2", "c3", "s4", "c5")

    def __init__(self, num_classes: int = 10, in_chans: int = 1) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.num_features = 120
        # Every unit up to F6 squashes its weighted sum plus bias (Sec. II-B): each layer ends in f.
        self.c1 = _squashed(nn.Conv2d(in_chans, 6, 5))
        self.s2 = _squashed(TrainableSubsampling(6))
        self.c3 = _squashed(PartialConv2d(c3_connections(), 5))
        self.s4 = _squashed(TrainableSubsampling(16))
        self.c5 = _squashed(nn.Conv2d(16, 120, 5))
        self.f6 = _squashed(nn.Linear(120, 84))
        self.output = EuclideanRBF(self._centres(num_classes))
        self._init_weights()

    @staticmethod
    def _centres(num_classes: int) -> torch.Tensor:
        if not 1 <= num_classes <= len(DIGIT_BITMAPS):
            raise CnnlabError(f"lenet5_1998 has RBF bitmaps for 1 to 10 classes, not {num_classes}")
        return digit_centres(num_classes)

    @torch.no_grad()
    def _init_weights(self) -> None:
        # Appendix A: uniform in (-2.4 / F_i, 2.4 / F_i), F_i the fan-in of the unit.
        layers = [(self.c1.layer, self.c1.layer.weight[0].numel()), (self.c5.layer, 16 * 25)]
        layers += [(conv, conv.weight[0].numel()) for conv in self.c3.layer.convs]
        layers += [(self.f6.layer, 120), (self.s2.layer, 4), (self.s4.layer, 4)]
        for layer, fan_in in layers:
            for param in (layer.weight, layer.bias):
                nn.init.uniform_(param, -2.4 / fan_in, 2.4 / fan_in)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Return the squashed C5 map (B, 120, 1, 1) for a 32x32 input."""
        x = self.c1(x)  # (B, 6, 28, 28)
        x = self.s2(x)  # (B, 6, 14, 14)
        x = self.c3(x)  # (B, 16, 10, 10)
        x = self.s4(x)  # (B, 16, 5, 5)
        return self.c5(x)  # (B, 120, 1, 1)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits = -RBF penalties (B, num_classes)."""
        x = self.f6(x.flatten(1))  # (B, 84)
        return -self.output(x)

    def reset_classifier(self, num_classes: int) -> None:
        """Rebuild the RBF layer with the bitmaps of digits 0..num_classes-1 (at most 10)."""
        centres = self._centres(num_classes).to(self.output.centres.device)
        self.output = EuclideanRBF(centres)
        self.num_classes = num_classes


@register_model(family="lenet", paper=PAPER, year=1998, input_size=(1, 32, 32), small_input=True, default_classes=10)
def lenet5(num_classes: int = 10, in_chans: int = 1, **kwargs: object) -> LeNet5:
    """Return the modern LeNet-5 (full C3; pool=PoolMode.MAX|AVG, act_layer=nn.ReLU|nn.Tanh)."""
    return LeNet5(LeNet5Config(**kwargs), num_classes=num_classes, in_chans=in_chans)


@register_model(family="lenet", paper=PAPER, year=1998, input_size=(1, 32, 32), small_input=True, default_classes=10)
def lenet5_tiny(num_classes: int = 10, in_chans: int = 1, **kwargs: object) -> LeNet5:
    """Return LeNet-5 at widths 4, 8, 32, 16 (8,042 parameters): the student of the distillation experiment."""
    return LeNet5(LeNet5Config(**{"widths": (4, 8, 32, 16), **kwargs}), num_classes=num_classes, in_chans=in_chans)


@register_model(family="lenet", paper=PAPER, year=1998, input_size=(1, 32, 32), small_input=True, default_classes=10)
def lenet5_dropout(num_classes: int = 10, in_chans: int = 1, **kwargs: object) -> LeNet5:
    """Return LeNet-5 with dropout 0.5 after fc1 and fc2: the noised student of the Noisy Student experiment."""
    return LeNet5(LeNet5Config(**{"dropout": 0.5, **kwargs}), num_classes=num_classes, in_chans=in_chans)


@register_model(family="lenet", paper=PAPER, year=1998, input_size=(1, 32, 32), small_input=True, default_classes=10)
def lenet5_bn(num_classes: int = 10, in_chans: int = 1, **kwargs: object) -> LeNet5:
    """Return LeNet-5 with BatchNorm after both convs: trains at the high restart rates of snapshot ensembles."""
    return LeNet5(LeNet5Config(**{"norm_layer": nn.BatchNorm2d, **kwargs}), num_classes=num_classes, in_chans=in_chans)


@register_model(family="lenet", paper=PAPER, year=1998, input_size=(1, 32, 32), small_input=True, default_classes=10)
def lenet5_1998(num_classes: int = 10, in_chans: int = 1, **kwargs: object) -> LeNet5Original:
    """Return LeNet-5 as published: Table I C3, trainable subsampling, RBF outputs (<= 10 classes)."""
    return LeNet5Original(num_classes=num_classes, in_chans=in_chans, **kwargs)
