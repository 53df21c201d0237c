"""SpeedNet: this project's own small network for fast CIFAR-10 training (the speedrun recipe).

Ideas from the published speed runs, implemented here from their descriptions: a first 2x2
convolution initialised to whiten image patches from the training data (Coates & Ng 2011;
used for CIFAR speed runs by tysam-code's hlb-CIFAR10, 2023, and Jordan's airbench, 2024),
three conv - pool - conv stages with BatchNorm and GELU as in Page's 2018 DAWNBench ResNet,
global max pooling and a down-scaled linear head. Widths and depths are cnnlab's choice.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.models.base import Classifier
from cnnlab.models.registry import register_model
from cnnlab.nn import ConvNormAct

PAPER = "cnnlab (2026), after Page 2018, tysam-code 2023 and Jordan 2024: fast CIFAR-10 training"


@dataclass(frozen=True)
class SpeedNetConfig:
    """Widths of the whitening layer and the three stages."""

    whiten_width: int | None = None  # default 2 x (channels x 2 x 2 patch): each eigenvector and its negative
    widths: tuple[int, int, int] = (64, 256, 256)
    head_scale: float = 1 / 9  # logits scaled down: a calmer start with a large learning rate


class SpeedNet(Classifier):
    """whiten 2x2 - 3 x [conv3x3-BN-GELU, max-pool 2, conv3x3-BN-GELU] - global max pool - linear."""

    classifier_path = "fc"
    stage_names = ("stage1", "stage2", "stage3")

    def __init__(self, config: SpeedNetConfig = SpeedNetConfig(), num_classes: int = 10, in_chans: int = 3) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.head_scale = config.head_scale
        width = config.whiten_width or 2 * in_chans * 2 * 2
        self.whiten = nn.Conv2d(in_chans, width, 2, padding=0, bias=True)  # 32 -> 31
        self.act = nn.GELU()
        for index, out in enumerate(config.widths, start=1):
            stage = nn.Sequential(
                ConvNormAct(width, out, 3, act_layer=nn.GELU),
                nn.MaxPool2d(2),
                ConvNormAct(out, out, 3, act_layer=nn.GELU),
            )
            self.add_module(f"stage{index}", stage)
            width = out
        self.num_features = width
        self.fc = nn.Linear(width, num_classes, bias=False)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Return the last stage's map (B, 256, 3, 3) for a 32x32 input."""
        x = self.act(self.whiten(x))  # (B, 24, 31, 31)
        return self.stage3(self.stage2(self.stage1(x)))  # 31 -> 15 -> 7 -> 3

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Return scaled logits from the global max of each channel."""
        return self.fc(x.amax(dim=(2, 3))) * self.head_scale


@torch.no_grad()
def whitening_init(conv: nn.Conv2d, images: torch.Tensor, eps: float = 5e-4) -> None:
    """Set `conv`'s filters to whiten its input patches: W = +-eigvec / sqrt(eigval + eps), bias 0.

    `images` are normalised float images (N, C, H, W) from the training data; the patches of
    the conv's kernel size become uncorrelated with unit variance (Coates & Ng 2011, ZCA-like
    but in the eigenbasis). Needs out_channels == 2 x in_channels x kh x kw.
    """
    kh, kw = conv.kernel_size
    patches = images.unfold(2, kh, 1).unfold(3, kw, 1)  # (N, C, H', W', kh, kw)
    patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, conv.in_channels * kh * kw).double()
    dims = patches.shape[1]
    if conv.out_channels != 2 * dims:
        raise CnnlabError(f"whitening needs {2 * dims} filters for {dims}-value patches, the conv has {conv.out_channels}")
    patches = patches - patches.mean(dim=0)
    covariance = patches.T @ patches / (len(patches) - 1)
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance)  # ascending
    filters = (eigenvectors / (eigenvalues + eps).sqrt()).T.reshape(dims, conv.in_channels, kh, kw)
    conv.weight.copy_(torch.cat([filters, -filters]).to(conv.weight))
    if conv.bias is not None:
        conv.bias.zero_()


@register_model(family="speed", paper=PAPER, year=2026, input_size=(3, 32, 32), small_input=True, default_classes=10)
def speednet(num_classes: int = 10, in_chans: int = 3, **kwargs: object) -> SpeedNet:
    """Return SpeedNet for 32x32 images (about 1.9 M parameters); see `whitening_init` for its first layer."""
    return SpeedNet(SpeedNetConfig(**kwargs), num_classes=num_classes, in_chans=in_chans)
