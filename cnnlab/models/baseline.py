"""Baselines a real network must beat: a single 1x1 convolution, per-pixel logistic regression.

It sees one pixel's channels and nothing around it, so on a segmentation task it can tell ink
from background but never which digit the ink belongs to; the gap to a U-Net is the value of
context (the receptive field).
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.models.base import Classifier
from cnnlab.models.registry import register_model
from cnnlab.nn import conv1x1

PAPER = "Cox 1958: The Regression Analysis of Binary Sequences (logistic regression), applied per pixel"
MLP_PAPER = "Rumelhart, Hinton & Williams 1986: Learning representations by back-propagating errors (the multilayer perceptron)"


class Pointwise(nn.Module):
    """One 1x1 convolution from the input channels to the classes."""

    def __init__(self, num_classes: int = 11, in_chans: int = 1) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.head = conv1x1(in_chans, num_classes)

    def feature_layers(self) -> list[str]:
        """Return the one layer there is."""
        return ["head"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return per-pixel class scores (B, num_classes, H, W)."""
        return self.head(x)


@register_model(family="baseline", paper=PAPER, year=1958, input_size=(1, 64, 64), min_train_size=1,
                min_eval_size=1, classifier=False, default_classes=11)
def pointwise(num_classes: int = 11, in_chans: int = 1) -> Pointwise:
    """Return the 1x1-convolution segmentation baseline."""
    return Pointwise(num_classes=num_classes, in_chans=in_chans)


class Dense(nn.Sequential):
    """Flatten, Linear, ReLU, and the vector back as a (B, C, 1, 1) map, so each layer is a stage like a conv's."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__(nn.Flatten(1), nn.Linear(in_features, out_features), nn.ReLU(inplace=True), nn.Unflatten(1, (out_features, 1, 1)))


class MLP(Classifier):
    """Fully connected layers with ReLU on the flattened image: a network that knows nothing of where pixels are.

    It sees the image as a vector, so one fixed permutation of the pixels (`SPEC@permuted`) leaves
    what it can learn unchanged, which a CNN's local, shared kernels cannot say (deck 002).
    """

    classifier_path = "fc"
    stage_names = ("hidden1", "hidden2")

    def __init__(self, num_classes: int = 10, in_chans: int = 1, side: int = 32, widths: tuple[int, int] = (256, 256)) -> None:
        super().__init__()
        self.num_classes, self.side = num_classes, side
        self.num_features = widths[1]
        self.hidden1 = Dense(in_chans * side * side, widths[0])
        self.hidden2 = Dense(widths[0], widths[1])
        self.fc = nn.Linear(widths[1], num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Return the last hidden layer as a (B, C, 1, 1) map."""
        if x.shape[-2:] != (self.side, self.side):
            raise CnnlabError(f"this MLP reads {self.side}x{self.side} images, not {x.shape[-2]}x{x.shape[-1]}: "
                              f"give input_size / input_pad that make {self.side}x{self.side}")
        return self.hidden2(self.hidden1(x))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits (B, num_classes)."""
        return self.fc(x.flatten(1))


@register_model(family="baseline", paper=MLP_PAPER, year=1986, input_size=(1, 32, 32), small_input=True, default_classes=10)
def mlp(num_classes: int = 10, in_chans: int = 1, **kwargs: object) -> MLP:
    """Return an MLP of two hidden layers of 256 on 32x32 images (MNIST padded by 2): the shuffled-pixels baseline."""
    return MLP(num_classes=num_classes, in_chans=in_chans, **kwargs)
