"""CenterNet (Zhou, Wang, Krähenbühl 2019, "Objects as Points"): a detector with no anchors and no boxes to match.

Every object is its centre point. At output stride R = 4 the network predicts a heatmap per class
(a peak at each centre), the box's width and height there, and the sub-pixel offset of the centre
lost by flooring it to the grid. Training (the paper's Sec. 3):
- the heatmap's target splats a Gaussian at each centre p~ = floor(p / R), the larger value where
  two overlap; its loss is the penalty-reduced focal loss, alpha = 2 and beta = 4, divided by the
  number of objects N;
- size and offset are L1 losses at the centres only, weighted 0.1 and 1; sizes are in output-grid
  units, as the paper's.
The Gaussian's spread follows the box: sigma_x = 0.54 w / 6 and sigma_y = 0.54 h / 6 (TTFNet, Liu et
al. 2020), an elliptical form of the paper's "object size-adaptive standard deviation".
Decoding keeps the heatmap's local maxima (a 3x3 max-pool, the paper's NMS substitute); the task
then applies its threshold, per-class NMS and top 100 as it does for every detector.

Here the backbone is cut at its stride-16 stage, upsampled twice (bilinear x2, 3x3 conv, BatchNorm,
ReLU) with the stride-8 stage added on the way, as the paper's ResNet variant upsamples with
deconvolutions to stride 4.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.models.detector import Backbone, DetectorOutput, object_weights
from cnnlab.models.registry import register_model
from cnnlab.nn import ConvNormAct, conv1x1

PAPER = "Zhou, Wang, Krähenbühl: Objects as Points"
STRIDE = 4
ALPHA, BETA = 2.0, 4.0
SIZE_WEIGHT, OFFSET_WEIGHT = 0.1, 1.0
SPREAD = 0.54  # TTFNet's alpha: sigma = SPREAD * side / 6
PRIOR = 0.1  # the heatmap starts at this probability everywhere (the paper's bias -2.19)


class CenterNetOutput(DetectorOutput):
    """Heatmaps (B, C, h, w) as logits, sizes (B, 2, h, w) and offsets (B, 2, h, w) at stride 4, and what they imply."""

    def __init__(self, heat: torch.Tensor, size: torch.Tensor, offset: torch.Tensor, image_size: tuple[int, int]) -> None:
        self.heat, self.size, self.offset, self.image_size = heat, size, offset, image_size

    def float(self) -> CenterNetOutput:
        """Return the output in float32."""
        return CenterNetOutput(self.heat.float(), self.size.float(), self.offset.float(), self.image_size)

    def _centres(self, targets: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Return, for every row of the targets (B * M of them): image, class, centre on the grid (n, 2), its cell (n, 2),
        size on the grid (n, 2) and whether it is an object.

        Every row is computed and padding is weighed out, never picked out: picking (nonzero) would
        make the host wait for the device once a step.
        """
        batch, rows = targets.shape[:2]
        valid = (targets[..., 0] >= 0).reshape(-1)
        classes, box = targets[..., 0].long().clamp_min(0).reshape(-1), targets[..., 1:5].reshape(-1, 4)
        image = torch.arange(batch, device=targets.device).repeat_interleave(rows)
        height, width = self.heat.shape[-2:]
        centre = torch.stack([(box[:, 0] + box[:, 2]) / 2, (box[:, 1] + box[:, 3]) / 2], dim=1) / STRIDE
        cell = torch.stack([centre[:, 0].long().clamp(0, width - 1), centre[:, 1].long().clamp(0, height - 1)], dim=1)
        size = torch.stack([box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]], dim=1) / STRIDE
        return image, classes, centre, cell, size, valid

    def heat_target(self, targets: torch.Tensor) -> torch.Tensor:
        """Return the Gaussian-splatted target heatmap (B, C, h, w): 1 exactly at each centre cell."""
        image, classes, _, cell, size, valid = self._centres(targets)
        batch, channels, height, width = self.heat.shape
        sigma = (SPREAD * size / 6).clamp_min(1e-3)  # (n, 2)
        xs = torch.arange(width, device=cell.device, dtype=self.heat.dtype)
        ys = torch.arange(height, device=cell.device, dtype=self.heat.dtype)
        gx = ((xs[None, :] - cell[:, :1]) / sigma[:, :1]).square()  # (n, w)
        gy = ((ys[None, :] - cell[:, 1:]) / sigma[:, 1:]).square()  # (n, h)
        splats = torch.exp(-(gy[:, :, None] + gx[:, None, :]) / 2) * valid.view(-1, 1, 1)  # (n, h, w); padding: 0
        target = torch.zeros(batch * channels, height * width, device=cell.device, dtype=self.heat.dtype)
        index = (image * channels + classes)[:, None].expand(-1, height * width)
        target = target.scatter_reduce(0, index, splats.reshape(len(splats), -1), reduce="amax")
        return target.view(batch, channels, height, width)

    def loss(self, targets: torch.Tensor) -> torch.Tensor:
        """Return focal heatmap loss + 0.1 size L1 + 1 offset L1, each over the number of objects (the paper's Eq. 1-3)."""
        image, classes, centre, cell, size, valid = self._centres(targets)
        # Each object counts by its weight (MixUp's share; 1 otherwise), padding by 0.
        weights = valid.to(self.size.dtype) * object_weights(targets).reshape(-1).to(self.size.dtype)
        weight = weights.unsqueeze(1)
        wanted = self.heat_target(targets)
        # log-sigmoid, not log of the sigmoid: the same value without log(0) at confident pixels.
        log_p, log_not_p = F.logsigmoid(self.heat), F.logsigmoid(-self.heat)
        p = self.heat.sigmoid()
        peak = wanted == 1
        batch, channels, height, width = self.heat.shape
        at_peak = torch.zeros(batch * channels * height * width, device=weights.device, dtype=weights.dtype)
        spot = ((image * channels + classes) * height + cell[:, 1]) * width + cell[:, 0]
        at_peak = at_peak.scatter_reduce(0, spot, weights, reduce="amax").view_as(self.heat)  # each peak's weight
        positive = ((1 - p).pow(ALPHA) * log_p * at_peak).masked_fill(~peak, 0.0).sum()
        negative = ((1 - wanted).pow(BETA) * p.pow(ALPHA) * log_not_p).masked_fill(peak, 0.0).sum()
        objects = weights.sum().clamp_min(1)
        focal = -(positive + negative) / objects
        at = (image, slice(None), cell[:, 1], cell[:, 0])
        size_error = ((self.size[at] - size).abs() * weight).sum() / objects
        offset_error = ((self.offset[at] - (centre - cell)).abs() * weight).sum() / objects
        return focal + SIZE_WEIGHT * size_error + OFFSET_WEIGHT * offset_error

    def hits(self, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (objects whose centre cell's strongest class is theirs, objects)."""
        image, classes, _, cell, _, valid = self._centres(targets)
        strongest = self.heat[image, :, cell[:, 1], cell[:, 0]].argmax(dim=1)
        return ((strongest == classes) & valid).sum(), valid.sum()

    def candidates(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Return a box per grid cell (B, h*w, 4) in input pixels and its class scores, zero off the heatmap's 3x3 peaks."""
        batch, channels, height, width = self.heat.shape
        p = self.heat.sigmoid()
        peaks = p * (F.max_pool2d(p, 3, stride=1, padding=1) == p)
        xs = torch.arange(width, device=p.device, dtype=p.dtype).view(1, 1, -1)
        ys = torch.arange(height, device=p.device, dtype=p.dtype).view(1, -1, 1)
        cx, cy = xs + self.offset[:, 0], ys + self.offset[:, 1]
        w, h = self.size[:, 0].clamp_min(0), self.size[:, 1].clamp_min(0)
        boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1) * STRIDE  # (B, h, w, 4)
        image_h, image_w = self.image_size
        limit = boxes.new_tensor([image_w, image_h, image_w, image_h])
        boxes = torch.minimum(boxes.clamp_min(0), limit).reshape(batch, -1, 4)
        return boxes, peaks.permute(0, 2, 3, 1).reshape(batch, -1, channels)


def _head(channels: int, width: int, out: int, bias: float = 0.0) -> nn.Sequential:
    """Return a 3x3 conv, ReLU, 1x1 conv head whose output bias starts at `bias`."""
    last = conv1x1(width, out, bias=True)
    nn.init.constant_(last.bias, bias)
    return nn.Sequential(ConvNormAct(channels, width, 3, norm_layer=None), last)


class Upsample(nn.Module):
    """Bilinear x2, a skip map added through a 1x1 projection, then a 3x3 conv with BatchNorm and ReLU."""

    def __init__(self, channels: int, skip: int | None, out: int) -> None:
        super().__init__()
        self.skip = conv1x1(skip, channels) if skip else None
        self.conv = ConvNormAct(channels, out, 3)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        """Return the map at twice the resolution."""
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        if self.skip is not None and skip is not None:
            x = x + self.skip(skip)
        return self.conv(x)


class CenterNet(nn.Module):
    """CenterNet on a zoo backbone's stride-8 and stride-16 stages: forward returns a CenterNetOutput."""

    def __init__(self, num_classes: int = 80, in_chans: int = 3, backbone: str = "mobilenet_v3_small",
                 input_size: int = 128, width: int = 64, backbone_options: dict[str, object] | None = None) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.backbone = Backbone(backbone, in_chans, (8, 16), (in_chans, input_size, input_size), backbone_options)
        shallow, deep = self.backbone.channels
        self.up8 = Upsample(deep, shallow, width)  # stride 16 -> 8, with the stride-8 stage
        self.up4 = Upsample(width, None, width)  # stride 8 -> 4
        self.heat = _head(width, width, num_classes, -math.log((1 - PRIOR) / PRIOR))
        self.size = _head(width, width, 2)
        self.offset = _head(width, width, 2)

    def load_backbone(self, state: dict[str, torch.Tensor], source: str) -> int:
        """Load a classifier's weights into the backbone (cnnlab.models.detector.Backbone); return the tensors taken."""
        return self.backbone.load_classifier(state, source)

    def feature_layers(self) -> list[str]:
        """Return the backbone's two stages and the stride-4 map the heads read, shallow to deep."""
        return ["backbone.taps.0", "backbone.taps.1", "up4"]

    def forward(self, x: torch.Tensor) -> CenterNetOutput:
        """Return heatmaps, sizes and offsets at stride 4 of images (B, C, H, W) whose sides divide by 16."""
        shallow, deep = self.backbone(x)
        features = self.up4(self.up8(deep, shallow))
        return CenterNetOutput(self.heat(features), self.size(features), self.offset(features), (x.shape[-2], x.shape[-1]))


@register_model(family="centernet", paper=PAPER, year=2019, input_size=(3, 128, 128), classifier=False, detector=True,
                default_classes=80, min_train_size=64, min_eval_size=64)
def centernet(**kwargs: object) -> CenterNet:
    """Return CenterNet at stride 4 on MobileNet v3 small's stride-8 and stride-16 stages."""
    if "backbone" not in kwargs:
        kwargs.setdefault("backbone_options", {"norm_momentum": 0.1})  # as yolo_v1's: see cnnlab.models.yolo
    return CenterNet(**kwargs)
