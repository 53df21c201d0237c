"""Network in Network (Lin, Chen, Yan 2013): mlpconv layers and global average pooling, CIFAR-10.

An mlpconv layer is a k x k convolution followed by two 1x1 convolutions, each rectified: a small
multilayer perceptron slid over the image (Sec. 3.1). Three of them, 192-160-96,
192-192-192 and 192-192-10, with 3x3 stride-2 pooling and dropout between them, as in the
authors' released CIFAR-10 definition. The last 1x1 conv yields one map per class and global
average pooling turns each map into its logit (Sec. 3.2): no fully connected layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cnnlab.models.base import Classifier
from cnnlab.models.registry import register_model
from cnnlab.nn import ConvNormAct, conv1x1, global_avg_pool

PAPER = "Lin, Chen, Yan: Network In Network"


@dataclass(frozen=True)
class NiNConfig:
    """Widths and kernels of the three mlpconv layers (the third one's last conv is the classifier)."""

    widths: tuple[tuple[int, ...], ...] = ((192, 160, 96), (192, 192, 192), (192, 192))
    kernel_sizes: tuple[int, int, int] = (5, 5, 3)  # of the first conv of each mlpconv
    dropout: float = 0.5  # after the first two pools (Sec. 4.2)


class MlpConv(nn.Sequential):
    """A k x k conv then 1x1 convs, each with ReLU: a shared MLP over every k x k patch."""

    def __init__(self, in_channels: int, widths: tuple[int, ...], kernel_size: int) -> None:
        super().__init__()
        self.conv = ConvNormAct(in_channels, widths[0], kernel_size, norm_layer=None)  # "same" padding
        for index, (width_in, width_out) in enumerate(zip(widths[:-1], widths[1:], strict=True), start=1):
            self.add_module(f"mlp{index}", ConvNormAct(width_in, width_out, 1, norm_layer=None))


class NetworkInNetwork(Classifier):
    """mlpconv - max-pool - dropout - mlpconv - avg-pool - dropout - mlpconv - 1x1 classes - GAP.

    The released Caffe definition rectifies the class maps too; here the logits stay linear so
    that a class score can be negative, as cross-entropy expects.
    """

    classifier_path = "classifier"
    stage_names = ("block1", "block2", "block3")

    def __init__(self, config: NiNConfig, num_classes: int = 10, in_chans: int = 3) -> None:
        super().__init__()
        self.num_classes = num_classes
        widths, kernels = config.widths, config.kernel_sizes
        self.block1 = MlpConv(in_chans, widths[0], kernels[0])
        # Caffe rounds pooled sizes up: 32 -> 16 -> 8.
        self.pool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.drop1 = nn.Dropout(config.dropout)
        self.block2 = MlpConv(widths[0][-1], widths[1], kernels[1])
        self.pool2 = nn.AvgPool2d(3, stride=2, ceil_mode=True)
        self.drop2 = nn.Dropout(config.dropout)
        self.block3 = MlpConv(widths[1][-1], widths[2], kernels[2])
        self.num_features = widths[2][-1]
        self.classifier = conv1x1(self.num_features, num_classes)
        self.pool = global_avg_pool()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Return the third mlpconv's map before the class conv, (B, 192, H/4, W/4)."""
        x = self.drop1(self.pool1(self.block1(x)))  # (B, 96, H/2, W/2)
        x = self.drop2(self.pool2(self.block2(x)))  # (B, 192, H/4, W/4)
        return self.block3(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits: one map per class, each averaged over space."""
        x = self.classifier(x)  # (B, num_classes, H/4, W/4)
        return self.pool(x)  # (B, num_classes)


@register_model(family="nin", paper=PAPER, year=2013, input_size=(3, 32, 32), small_input=True, default_classes=10)
def nin(num_classes: int = 10, in_chans: int = 3, **kwargs: object) -> NetworkInNetwork:
    """Return the CIFAR-10 Network in Network: three mlpconv layers and global average pooling."""
    return NetworkInNetwork(NiNConfig(**kwargs), num_classes=num_classes, in_chans=in_chans)
