"""GoogLeNet / Inception v1 (Szegedy et al. 2015) and Inception v3 (Szegedy et al. 2016).

Both are built as torchvision builds them (itself a port of TF-slim): bias-free convs with
BatchNorm (eps 0.001) and ReLU, and layers registered in torchvision's order, auxiliary heads
included, so `load_torchvision_state_dict` maps its weights one to one. In training mode a model
with auxiliary heads returns `AuxOutput(logits, aux)`; the training engine adds each auxiliary
loss with weight 0.3, the paper's discount (Szegedy et al. 2015, Sec. 5). In eval mode it returns
the logits alone and the auxiliary heads are not run.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cnnlab.models.base import AuxOutput, Classifier
from cnnlab.models.registry import register_model
from cnnlab.models.transfer import IMAGENET_MEAN, IMAGENET_STD
from cnnlab.nn.inception import (
    VALID,
    BasicConv2d,
    InceptionSpec,
    inception_a,
    inception_c,
    inception_e,
    inception_v1_module,
    reduction_a,
    reduction_b,
)

V1_PAPER = "Szegedy et al.: Going Deeper with Convolutions"
V3_PAPER = "Szegedy, Vanhoucke, Ioffe, Shlens, Wojna: Rethinking the Inception Architecture for Computer Vision"


def transform_imagenet_input(x: torch.Tensor) -> torch.Tensor:
    """Return ImageNet-normalised RGB re-scaled to [-1, 1], the input the TF-trained weights expect."""
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return x * (std / 0.5) + (mean - 0.5) / 0.5  # undo (x - mean) / std, then apply (x - 0.5) / 0.5


class AuxHeadClassifier(Classifier):
    """A classifier whose trunk also feeds auxiliary heads (each ending in a Linear `classifier`)."""

    aux_names: tuple[str, ...] = ()  # attributes holding the auxiliary heads (or None), input to output

    def trunk(self, x: torch.Tensor, with_aux: bool) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Return the last feature map and, when `with_aux`, the logits of each auxiliary head."""
        raise NotImplementedError

    def aux_heads(self) -> list[nn.Module]:
        """Return the auxiliary heads that are present, input to output."""
        return [head for name in self.aux_names if (head := getattr(self, name)) is not None]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Return the last unpooled feature map (B, C, H, W); auxiliary heads are not run."""
        return self.trunk(x, with_aux=False)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor | AuxOutput:
        """Return logits, or AuxOutput(logits, aux) in training mode when auxiliary heads exist."""
        features, aux = self.trunk(x, with_aux=self.training)
        logits = self.forward_head(features)
        return AuxOutput(logits, aux) if aux else logits

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the final layer, and each auxiliary head's, by fresh ones with `num_classes` outputs."""
        super().reset_classifier(num_classes)
        for head in self.aux_heads():
            old = head.classifier
            head.classifier = nn.Linear(old.in_features, num_classes).to(device=old.weight.device, dtype=old.weight.dtype)


# ---------------------------------------------------------------- GoogLeNet (Inception v1)


@dataclass(frozen=True)
class GoogLeNetConfig:
    """GoogLeNet's Table 1, one field per Inception module, plus the dropout rates."""

    inception3a: InceptionSpec = InceptionSpec(192, 64, 96, 128, 16, 32, 32)
    inception3b: InceptionSpec = InceptionSpec(256, 128, 128, 192, 32, 96, 64)
    inception4a: InceptionSpec = InceptionSpec(480, 192, 96, 208, 16, 48, 64)
    inception4b: InceptionSpec = InceptionSpec(512, 160, 112, 224, 24, 64, 64)
    inception4c: InceptionSpec = InceptionSpec(512, 128, 128, 256, 24, 64, 64)
    inception4d: InceptionSpec = InceptionSpec(512, 112, 144, 288, 32, 64, 64)
    inception4e: InceptionSpec = InceptionSpec(528, 256, 160, 320, 32, 128, 128)
    inception5a: InceptionSpec = InceptionSpec(832, 256, 160, 320, 32, 128, 128)
    inception5b: InceptionSpec = InceptionSpec(832, 384, 192, 384, 48, 128, 128)
    dropout: float = 0.2  # before the classifier (torchvision; the paper uses 0.4)
    aux_dropout: float = 0.7  # in each auxiliary head (paper, Sec. 5)


class GoogLeNetAux(nn.Module):
    """Auxiliary classifier on 4a and 4d (Sec. 5): pool to 4x4, 1x1 conv 128, fc 1024, dropout, fc."""

    def __init__(self, in_channels: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(4)  # the paper's 5x5/3 average pool maps 14x14 to 4x4
        self.conv = BasicConv2d(in_channels, 128, 1)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.act = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return auxiliary logits (B, num_classes)."""
        x = self.conv(self.pool(x))  # (B, 128, 4, 4)
        x = x.flatten(1)  # (B, 2048)
        x = self.dropout(self.act(self.fc1(x)))
        return self.classifier(x)


class GoogLeNet(AuxHeadClassifier):
    """Stem, nine Inception modules in three grids (28, 14, 7 at 224), global pool, dropout, fc.

    The auxiliary heads' losses are weighted by 0.3 in training (the engine applies it).
    """

    classifier_path = "fc"
    stage_names = ("conv3", "inception3b", "inception4e", "inception5b")
    aux_names = ("aux1", "aux2")

    def __init__(self, config: GoogLeNetConfig, num_classes: int = 1000, in_chans: int = 3, aux_logits: bool = False, transform_input: bool = False) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.num_features = config.inception5b.out_channels
        self.transform_input = transform_input  # set by load_torchvision_state_dict for its weights
        self.conv1 = BasicConv2d(in_chans, 64, 7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, 1)
        self.conv3 = BasicConv2d(64, 192, 3)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception3a = inception_v1_module(config.inception3a)
        self.inception3b = inception_v1_module(config.inception3b)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = inception_v1_module(config.inception4a)
        self.inception4b = inception_v1_module(config.inception4b)
        self.inception4c = inception_v1_module(config.inception4c)
        self.inception4d = inception_v1_module(config.inception4d)
        self.inception4e = inception_v1_module(config.inception4e)
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.inception5a = inception_v1_module(config.inception5a)
        self.inception5b = inception_v1_module(config.inception5b)
        # torchvision registers the auxiliary heads here, after 5b: the state dicts list them here.
        self.aux1 = GoogLeNetAux(config.inception4a.out_channels, num_classes, config.aux_dropout) if aux_logits else None
        self.aux2 = GoogLeNetAux(config.inception4d.out_channels, num_classes, config.aux_dropout) if aux_logits else None
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(config.dropout)
        self.fc = nn.Linear(self.num_features, num_classes)
        for module in self.modules():  # torchvision's init: truncated N(0, 0.01^2)
            if isinstance(module, nn.Conv2d | nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.01, a=-2, b=2)

    def trunk(self, x: torch.Tensor, with_aux: bool) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Return the last feature map (B, C, h, w) and, when `with_aux`, the aux heads' logits."""
        aux = []
        if self.transform_input:
            x = transform_imagenet_input(x)
        x = self.conv1(x)  # (B, 64, H/2, W/2)
        x = self.maxpool1(x)  # (B, 64, H/4, W/4)
        x = self.conv2(x)
        x = self.conv3(x)  # (B, 192, H/4, W/4)
        x = self.maxpool2(x)  # (B, 192, H/8, W/8)
        x = self.inception3a(x)
        x = self.inception3b(x)  # (B, 480, H/8, W/8)
        x = self.maxpool3(x)
        x = self.inception4a(x)  # (B, 512, H/16, W/16)
        if with_aux and self.aux1 is not None:
            aux.append(self.aux1(x))
        x = self.inception4b(x)
        x = self.inception4c(x)
        x = self.inception4d(x)  # (B, 528, H/16, W/16)
        if with_aux and self.aux2 is not None:
            aux.append(self.aux2(x))
        x = self.inception4e(x)  # (B, 832, H/16, W/16)
        x = self.maxpool4(x)  # (B, 832, H/32, W/32)
        x = self.inception5a(x)
        x = self.inception5b(x)  # (B, 1024, H/32, W/32)
        return x, tuple(aux)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits from the pooled inception5b map."""
        x = self.avgpool(x).flatten(1)  # (B, 1024)
        return self.fc(self.dropout(x))


# ---------------------------------------------------------------- Inception v3


@dataclass(frozen=True)
class InceptionV3Config:
    """The widths that differ between Inception v3 modules of the same kind (Table 1)."""

    pool_features: tuple[int, int, int] = (32, 64, 64)  # pool-branch 1x1 of Mixed_5b, 5c, 5d
    channels_7x7: tuple[int, int, int, int] = (128, 160, 160, 192)  # 1x7 / 7x1 width in 6b..6e
    dropout: float = 0.5  # before the classifier (torchvision)


class InceptionV3Aux(nn.Module):
    """Auxiliary classifier on the 17x17 grid (Fig. 8): 5x5/3 avg-pool, 1x1 conv, 5x5 conv, fc."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(5, stride=3)
        self.conv0 = BasicConv2d(in_channels, 128, 1)
        self.conv1 = BasicConv2d(128, 768, 5, padding=VALID)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return auxiliary logits (B, num_classes); needs a 17x17 input grid (a 299x299 image)."""
        x = self.pool(x)  # (B, 768, 5, 5)
        x = self.conv0(x)  # (B, 128, 5, 5)
        x = self.conv1(x)  # (B, 768, 1, 1)
        x = self.global_pool(x).flatten(1)  # (B, 768)
        return self.classifier(x)


class InceptionV3(AuxHeadClassifier):
    """Stem of plain convs, 3 + 1 + 4 + 1 + 2 Inception modules over grids 35, 17 and 8, pool, fc."""

    classifier_path = "fc"
    stage_names = ("conv4a", "mixed_5d", "mixed_6e", "mixed_7c")
    aux_names = ("aux",)

    def __init__(self, config: InceptionV3Config, num_classes: int = 1000, in_chans: int = 3, aux_logits: bool = True, transform_input: bool = False) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.num_features = 2048
        self.transform_input = transform_input  # set by load_torchvision_state_dict for its weights
        pool_features, c7 = config.pool_features, config.channels_7x7
        self.conv1a = BasicConv2d(in_chans, 32, 3, stride=2, padding=VALID)
        self.conv2a = BasicConv2d(32, 32, 3, padding=VALID)
        self.conv2b = BasicConv2d(32, 64, 3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2)
        self.conv3b = BasicConv2d(64, 80, 1)
        self.conv4a = BasicConv2d(80, 192, 3, padding=VALID)
        self.maxpool2 = nn.MaxPool2d(3, stride=2)
        self.mixed_5b = inception_a(192, pool_features[0])
        self.mixed_5c = inception_a(224 + pool_features[0], pool_features[1])  # 224 = 64 + 64 + 96
        self.mixed_5d = inception_a(224 + pool_features[1], pool_features[2])
        self.mixed_6a = reduction_a(224 + pool_features[2])
        grid17 = 384 + 96 + 224 + pool_features[2]  # 768: two conv branches and the pooled input
        self.mixed_6b = inception_c(grid17, c7[0])
        self.mixed_6c = inception_c(768, c7[1])  # an inception_c module outputs 4 x 192
        self.mixed_6d = inception_c(768, c7[2])
        self.mixed_6e = inception_c(768, c7[3])
        self.aux = InceptionV3Aux(768, num_classes) if aux_logits else None  # torchvision's place
        self.mixed_7a = reduction_b(768)
        self.mixed_7b = inception_e(1280)  # 320 + 192 + 768
        self.mixed_7c = inception_e(2048)  # 320 + 2 x 768 + 192
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(config.dropout)
        self.fc = nn.Linear(self.num_features, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's init: truncated N(0, 0.1^2), narrower in the auxiliary head's last layers.
        for module in self.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.1, a=-2, b=2)
        if self.aux is not None:
            nn.init.trunc_normal_(self.aux.conv1.conv.weight, std=0.01, a=-2, b=2)
            nn.init.trunc_normal_(self.aux.classifier.weight, std=0.001, a=-2, b=2)

    def trunk(self, x: torch.Tensor, with_aux: bool) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Return the last feature map (B, C, h, w) and, when `with_aux`, the aux heads' logits."""
        aux = []
        if self.transform_input:
            x = transform_imagenet_input(x)
        x = self.conv1a(x)  # (B, 32, 149, 149) at 299
        x = self.conv2a(x)  # (B, 32, 147, 147)
        x = self.conv2b(x)  # (B, 64, 147, 147)
        x = self.maxpool1(x)  # (B, 64, 73, 73)
        x = self.conv3b(x)  # (B, 80, 73, 73)
        x = self.conv4a(x)  # (B, 192, 71, 71)
        x = self.maxpool2(x)  # (B, 192, 35, 35)
        x = self.mixed_5b(x)
        x = self.mixed_5c(x)
        x = self.mixed_5d(x)  # (B, 288, 35, 35)
        x = self.mixed_6a(x)  # (B, 768, 17, 17)
        x = self.mixed_6b(x)
        x = self.mixed_6c(x)
        x = self.mixed_6d(x)
        x = self.mixed_6e(x)  # (B, 768, 17, 17)
        if with_aux and self.aux is not None:
            aux.append(self.aux(x))
        x = self.mixed_7a(x)  # (B, 1280, 8, 8)
        x = self.mixed_7b(x)
        x = self.mixed_7c(x)  # (B, 2048, 8, 8)
        return x, tuple(aux)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits from the pooled Mixed_7c map."""
        x = self.avgpool(x).flatten(1)  # (B, 2048)
        return self.fc(self.dropout(x))


# ---------------------------------------------------------------- builders


@register_model(family="inception", paper=V1_PAPER, year=2015, torchvision="googlenet", min_train_size=15, min_eval_size=15)
def googlenet(num_classes: int = 1000, in_chans: int = 3, **kwargs: object) -> GoogLeNet:
    """Return GoogLeNet (Inception v1) as torchvision builds it; aux_logits=True adds both aux heads."""
    # Adaptive 4x4 pooling in the aux heads accepts any grid, so torchvision's 15x15 floor holds.
    return GoogLeNet(GoogLeNetConfig(), num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model(family="inception", paper=V3_PAPER, year=2016, torchvision="inception_v3", input_size=(3, 299, 299), min_train_size=299, min_eval_size=75)
def inception_v3(num_classes: int = 1000, in_chans: int = 3, **kwargs: object) -> InceptionV3:
    """Return Inception v3 with its auxiliary head (aux_logits=True by default, as torchvision)."""
    # The aux head's 5x5/3 pool and 5x5 conv need a 17x17 grid: an input of 299x299 or more.
    return InceptionV3(InceptionV3Config(), num_classes=num_classes, in_chans=in_chans, **kwargs)
