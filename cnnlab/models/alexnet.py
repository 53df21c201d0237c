"""AlexNet (Krizhevsky, Sutskever, Hinton 2012), torchvision's one-tower variant, and ZFNet (2014).

Five convolutions, three overlapping 3x3 stride-2 max-pools, three fully connected layers.
`alexnet` is torchvision's network (64-192-384-256-256 channels, no normalisation; Krizhevsky's
"one weird trick" paper, 2014) registered in torchvision's order. `alexnet_2012` is the paper's:
96-256-384-384-256 channels with conv2, conv4 and conv5 split in two groups as the two GPUs
split them (Sec. 3.2, Fig. 2), and local response normalisation (Sec. 3.3). `zfnet` is Zeiler and
Fergus's revision (Fig. 3): a 7x7 stride-2 first layer and a stride-2 second layer.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from cnnlab.models.base import Classifier
from cnnlab.models.registry import register_model
from cnnlab.nn import ConvNormAct

PAPER = "Krizhevsky, Sutskever, Hinton: ImageNet Classification with Deep Convolutional Neural Networks"


@dataclass(frozen=True)
class ConvSpec:
    """One convolutional layer of the table, and what follows it."""

    out_channels: int
    kernel_size: int
    stride: int = 1
    padding: int = 0  # pixels on each side
    groups: int = 1  # 2: each GPU's half of the maps reads only its own half of the inputs
    norm: bool = False  # response normalisation after this layer (when the config enables it)
    pool: bool = False  # 3x3 stride-2 max-pool after this layer (overlapping pooling, Sec. 3.4)


@dataclass(frozen=True)
class AlexNetConfig:
    """One AlexNet-style network: conv table, normalisation, pooling rounding and FC head."""

    convs: tuple[ConvSpec, ...]
    lrn: bool = False  # local response normalisation where a ConvSpec asks for it
    norm_after_pool: bool = False  # ZFNet normalises the pooled map; AlexNet normalises, then pools
    pool_ceil_mode: bool = False  # Caffe rounds pooled sizes up: ZFNet's 110 -> 55 and 26 -> 13
    dropout_before_fc: bool = False  # torchvision drops fc6/fc7 inputs; the papers drop their outputs
    hidden: int = 4096  # units of fc6 and fc7
    dropout: float = 0.5  # probability of zeroing a unit (Sec. 4.2)


def local_response_norm() -> nn.LocalResponseNorm:
    """Return the normalisation of Sec. 3.3: k = 2, n = 5, alpha = 1e-4, beta = 0.75."""
    # b_i = a_i / (k + alpha * sum over the n neighbouring maps of a_j^2)^beta. PyTorch divides
    # alpha by n, so pass n * alpha to get the paper's equation.
    return nn.LocalResponseNorm(size=5, alpha=5 * 1e-4, beta=0.75, k=2.0)


class AlexNet(Classifier):
    """features (conv1..conv5 with norms and pools), 6x6 adaptive average pool, fc6-fc7-fc8."""

    classifier_path = "classifier.fc8"
    stage_names = tuple(f"features.conv{i}" for i in range(1, 6))

    def __init__(self, config: AlexNetConfig, num_classes: int = 1000, in_chans: int = 3) -> None:
        super().__init__()
        self.num_classes = num_classes
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        in_channels = in_chans
        for index, spec in enumerate(config.convs, start=1):
            layers[f"conv{index}"] = ConvNormAct(
                in_channels,
                spec.out_channels,
                spec.kernel_size,
                stride=spec.stride,
                padding=spec.padding,
                groups=spec.groups,
                norm_layer=None,
            )
            normalise = spec.norm and config.lrn
            if normalise and not config.norm_after_pool:
                layers[f"norm{index}"] = local_response_norm()
            if spec.pool:
                layers[f"pool{index}"] = nn.MaxPool2d(3, stride=2, ceil_mode=config.pool_ceil_mode)
            if normalise and config.norm_after_pool:
                layers[f"norm{index}"] = local_response_norm()
            in_channels = spec.out_channels
        self.features = nn.Sequential(layers)
        self.num_features = in_channels
        # At 224 (227 for the 2012 net) the map is already 6x6 and this pool is the identity;
        # it lets smaller inputs reach fc6 (torchvision added it).
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(self._head(config, in_channels * 6 * 6, num_classes))

    @staticmethod
    def _head(config: AlexNetConfig, in_features: int, num_classes: int) -> OrderedDict[str, nn.Module]:
        head: OrderedDict[str, nn.Module] = OrderedDict()
        for index, width in ((6, config.hidden), (7, config.hidden)):
            if config.dropout_before_fc:
                head[f"drop{index}"] = nn.Dropout(config.dropout)
            head[f"fc{index}"] = nn.Linear(in_features, width)
            head[f"relu{index}"] = nn.ReLU(inplace=True)
            if not config.dropout_before_fc:
                head[f"drop{index}"] = nn.Dropout(config.dropout)
            in_features = width
        head["fc8"] = nn.Linear(in_features, num_classes)
        return head

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Return the pooled conv5 map (B, 256, 6, 6) at the paper's input size."""
        return self.features(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits from fc6-fc7-fc8 on the 6x6 map."""
        x = self.avgpool(x).flatten(1)  # (B, 256 * 6 * 6)
        return self.classifier(x)


@register_model(family="alexnet", paper="Krizhevsky: One weird trick for parallelizing convolutional neural networks", year=2014, min_train_size=63, min_eval_size=63, torchvision="alexnet")
def alexnet(num_classes: int = 1000, in_chans: int = 3, **kwargs: object) -> AlexNet:
    """Return torchvision's AlexNet: one tower, 64-192-384-256-256, no normalisation."""
    config = AlexNetConfig(
        (
            ConvSpec(64, 11, stride=4, padding=2, pool=True),
            ConvSpec(192, 5, padding=2, pool=True),
            ConvSpec(384, 3, padding=1),
            ConvSpec(256, 3, padding=1),
            ConvSpec(256, 3, padding=1, pool=True),
        ),
        dropout_before_fc=True,
    )
    return AlexNet(config, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model(family="alexnet", paper=PAPER, year=2012, input_size=(3, 227, 227), min_train_size=67, min_eval_size=67)
def alexnet_2012(num_classes: int = 1000, in_chans: int = 3, lrn: bool = True, **kwargs: object) -> AlexNet:
    """Return the 2012 AlexNet: two-group conv2/4/5, optional LRN after conv1 and conv2 (227x227)."""
    # The paper says 224x224, but 11x11 stride 4 without padding needs 227 to give its 55x55.
    # The two GPUs normalised within their own 48 maps; here LRN runs across all 96 (and 256).
    config = AlexNetConfig(
        (
            ConvSpec(96, 11, stride=4, norm=True, pool=True),
            ConvSpec(256, 5, padding=2, groups=2, norm=True, pool=True),
            ConvSpec(384, 3, padding=1),  # conv3 reads the maps of both GPUs
            ConvSpec(384, 3, padding=1, groups=2),
            ConvSpec(256, 3, padding=1, groups=2, pool=True),
        ),
        lrn=lrn,
    )
    return AlexNet(config, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model(family="alexnet", paper="Zeiler, Fergus: Visualizing and Understanding Convolutional Networks", year=2014, min_train_size=47, min_eval_size=47)
def zfnet(num_classes: int = 1000, in_chans: int = 3, lrn: bool = True, **kwargs: object) -> AlexNet:
    """Return ZFNet (Fig. 3): 7x7/2 conv1, 5x5/2 conv2, dense conv3-5, 224 -> 110 -> 55 -> 26 -> 13 -> 6."""
    config = AlexNetConfig(
        (
            ConvSpec(96, 7, stride=2, padding=1, norm=True, pool=True),
            ConvSpec(256, 5, stride=2, norm=True, pool=True),
            ConvSpec(384, 3, padding=1),
            ConvSpec(384, 3, padding=1),
            ConvSpec(256, 3, padding=1, pool=True),
        ),
        lrn=lrn,
        norm_after_pool=True,  # Fig. 3: filter, rectify, pool, then contrast normalisation
        pool_ceil_mode=True,
    )
    return AlexNet(config, num_classes=num_classes, in_chans=in_chans, **kwargs)
