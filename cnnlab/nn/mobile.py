"""Mobile blocks: the inverted residual of MobileNet v2/v3 and EfficientNet, and the width rounding rule.

Sandler, Howard, Zhu, Zhmoginov, Chen 2018, "MobileNetV2: Inverted Residuals and Linear
Bottlenecks"; Howard et al. 2019, "Searching for MobileNetV3"; Tan & Le 2019, "EfficientNet".
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from cnnlab.nn.conv import ConvNormAct
from cnnlab.nn.regularization import DropPath

LayerFactory = Callable[..., nn.Module]


def make_divisible(value: float, divisor: int = 8) -> int:
    """Return `value` rounded to the nearest multiple of `divisor`, at least `divisor` and >= 90% of it.

    The rule of the TensorFlow reference code of MobileNet v2/v3 and EfficientNet: widths that are
    multiples of 8 map well onto hardware, and never shrink a layer by more than 10%.
    """
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class InvertedResidual(nn.Module):
    """Expand 1x1 -> depth-wise k x k -> optional SE -> linear 1x1 projection, plus x when shapes match.

    MobileNet v2's block (Sandler et al. 2018, Fig. 3b); with SE it is v3's block and EfficientNet's
    MBConv. The projection has no activation: ReLU on a narrow layer destroys information (Sec. 3.2).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        expanded_channels: int,
        *,
        kernel_size: int = 3,
        stride: int = 1,
        act_layer: LayerFactory = nn.ReLU6,
        norm_layer: LayerFactory = nn.BatchNorm2d,
        se_layer: Callable[[int], nn.Module] | None = None,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        if expanded_channels != in_channels:
            layers.append(ConvNormAct(in_channels, expanded_channels, 1, padding=0, norm_layer=norm_layer, act_layer=act_layer))
        layers.append(ConvNormAct(
            expanded_channels, expanded_channels, kernel_size, stride=stride, padding=(kernel_size - 1) // 2,
            groups=expanded_channels, norm_layer=norm_layer, act_layer=act_layer,
        ))
        if se_layer is not None:
            layers.append(se_layer(expanded_channels))
        layers.append(ConvNormAct(expanded_channels, out_channels, 1, padding=0, norm_layer=norm_layer, act_layer=None))
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_channels == out_channels
        self.drop_path = DropPath(drop_path)  # stochastic depth on the residual branch (EfficientNet)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return block(x) + x when the shapes allow a shortcut, else block(x)."""
        out = self.block(x)
        if self.use_residual:
            out = x + self.drop_path(out)
        return out
