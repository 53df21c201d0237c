"""YOLO v1 (Redmon, Divvala, Girshick, Farhadi 2016): detection as one regression over an S x S grid.

The image is divided into an S x S grid; each cell predicts B boxes (x, y, sqrt w, sqrt h,
confidence) and C class probabilities, an S x S x (B*5 + C) tensor, with no region proposals.
(x, y) is the box centre's offset inside its cell, w and h are fractions of the image, and the
confidence is trained towards the IoU of the predicted box with the truth. The loss is the
paper's sum of squared errors (its Eq. 3): lambda_coord = 5 on the coordinates of the responsible
predictor (of a cell's B, the one whose box has the highest IoU with the object whose centre
falls in the cell), square roots of w and h so that an error counts more on a small box,
lambda_noobj = 0.5 on the confidence of every other predictor, and the class probabilities of
cells holding an object. A cell holds one object, as in the paper; when several centres share a
cell the last of the image's rows is kept. A class score is confidence times class probability.

Here the grid sits on one stage of any zoo backbone (S = input / stride: 8 at 128 px on a
stride-16 stage) and the head is convolutional (3x3, 3x3, 1x1 with leaky ReLU 0.1, the paper's
activation) rather than the paper's two fully connected layers; the five box numbers pass a
sigmoid and the class scores a softmax, so every prediction starts in its range.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.models.detector import Backbone, DetectorOutput, object_weights
from cnnlab.models.registry import register_model
from cnnlab.nn import ConvNormAct, conv1x1

PAPER = "Redmon, Divvala, Girshick, Farhadi: You Only Look Once: Unified, Real-Time Object Detection"
LEAKY = partial(nn.LeakyReLU, 0.1)


def paired_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Return the IoU of each box in `a` with the box at the same place in `b` (..., 4) x1y1x2y2."""
    width = (torch.minimum(a[..., 2], b[..., 2]) - torch.maximum(a[..., 0], b[..., 0])).clamp_min(0)
    height = (torch.minimum(a[..., 3], b[..., 3]) - torch.maximum(a[..., 1], b[..., 1])).clamp_min(0)
    inter = width * height
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter / (area_a + area_b - inter).clamp_min(1e-9)


class YoloOutput(DetectorOutput):
    """The S x S x (B*5 + C) prediction of one batch, with the paper's loss and the boxes it scores."""

    def __init__(self, raw: torch.Tensor, boxes: int, image_size: tuple[int, int], coord: float, noobj: float) -> None:
        self.raw, self.slots, self.image_size, self.coord, self.noobj = raw, boxes, image_size, coord, noobj
        batch, rows, cols, _ = raw.shape
        numbers = raw[..., : 5 * boxes].reshape(batch, rows, cols, boxes, 5).sigmoid()
        self.xy, self.root_wh, self.confidence = numbers[..., :2], numbers[..., 2:4], numbers[..., 4]
        self.probs = raw[..., 5 * boxes :].softmax(dim=-1)  # (B, S, S, C)
        self.cell = (image_size[0] / rows, image_size[1] / cols)  # (height, width) of a cell in pixels

    def float(self) -> YoloOutput:
        """Return the output in float32."""
        return YoloOutput(self.raw.float(), self.slots, self.image_size, self.coord, self.noobj)

    def boxes(self) -> torch.Tensor:
        """Return every predictor's box (B, S, S, boxes, 4) x1y1x2y2 in input pixels."""
        _, rows, cols, _, _ = self.xy.shape
        i = torch.arange(rows, device=self.raw.device, dtype=self.xy.dtype).view(1, -1, 1, 1)
        j = torch.arange(cols, device=self.raw.device, dtype=self.xy.dtype).view(1, 1, -1, 1)
        cx = (j + self.xy[..., 0]) * self.cell[1]
        cy = (i + self.xy[..., 1]) * self.cell[0]
        w = self.root_wh[..., 0].square() * self.image_size[1]
        h = self.root_wh[..., 1].square() * self.image_size[0]
        return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)

    def _assign(self, targets: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Return, for every row of the targets (B, M): image, cell row, cell column, class, box and whether it is kept.

        A row is kept when it is an object and, of its image's rows in its cell, the heaviest (MixUp's
        weights: the object that shows most), the last among equals. Every row
        is computed and padding is weighed out, never picked out: picking (nonzero) would make the
        host wait for the device once a step.
        """
        batch, rows, cols = self.raw.shape[:3]
        valid = targets[..., 0] >= 0
        classes, box = targets[..., 0].long().clamp_min(0), targets[..., 1:5]
        image = torch.arange(batch, device=targets.device).view(-1, 1).expand_as(classes)
        centre_x, centre_y = (box[..., 0] + box[..., 2]) / 2, (box[..., 1] + box[..., 3]) / 2
        row = (centre_y / self.cell[0]).long().clamp(0, rows - 1)
        col = (centre_x / self.cell[1]).long().clamp(0, cols - 1)
        cells = batch * rows * cols
        flat = torch.where(valid, (image * rows + row) * cols + col, cells)  # padding goes to a spare slot
        order = torch.arange(flat.numel(), device=flat.device).view_as(flat)
        # One integer key per row orders by weight first (to 1e-6), then by position.
        key = (object_weights(targets).clamp(0, 1) * 1e6).round().long() * flat.numel() + order
        last = torch.full((cells + 1,), -1, device=flat.device, dtype=torch.long)
        last = last.scatter_reduce(0, flat.reshape(-1), key.reshape(-1), reduce="amax")
        kept = valid & (last[flat] == key)
        return image, row, col, classes, box, kept

    def loss(self, targets: torch.Tensor) -> torch.Tensor:
        """Return the paper's sum-squared loss per image (Eq. 3) against targets (B, M, 5)."""
        image, row, col, classes, box, kept = self._assign(targets)
        height, width = self.image_size
        # Each kept object's terms count by its weight (MixUp's share; 1 otherwise), padding by 0.
        weight = kept.to(self.xy.dtype) * object_weights(targets).to(self.xy.dtype)
        predicted = self.boxes()[image, row, col]  # (B, M, boxes, 4)
        iou = paired_iou(predicted, box.unsqueeze(-2)).detach()
        responsible = iou.argmax(dim=-1)  # (B, M)
        chosen = (image, row, col, responsible)
        centre_x, centre_y = (box[..., 0] + box[..., 2]) / 2, (box[..., 1] + box[..., 3]) / 2
        offset = torch.stack([centre_x / self.cell[1] - col, centre_y / self.cell[0] - row], dim=-1)
        root = torch.stack([((box[..., 2] - box[..., 0]) / width).clamp_min(0).sqrt(),
                            ((box[..., 3] - box[..., 1]) / height).clamp_min(0).sqrt()], dim=-1)
        coordinates = (((self.xy[chosen] - offset).square().sum(-1) + (self.root_wh[chosen] - root).square().sum(-1))
                       * weight).sum()
        target_confidence = iou.gather(-1, responsible.unsqueeze(-1)).squeeze(-1)
        with_object = ((self.confidence[chosen] - target_confidence).square() * weight).sum()
        # Kept rows hold distinct cells, so adding their flags marks each responsible predictor once.
        mask = torch.zeros_like(self.confidence).index_put_(chosen, kept.to(self.xy.dtype), accumulate=True) > 0
        without_object = self.confidence.masked_fill(mask, 0.0).square().sum()
        one_hot = F.one_hot(classes, self.probs.shape[-1]).to(self.probs.dtype)
        class_error = ((self.probs[image, row, col] - one_hot).square().sum(-1) * weight).sum()
        total = self.coord * coordinates + with_object + self.noobj * without_object + class_error
        return total / len(self.raw)

    def hits(self, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (objects whose cell's most probable class is theirs, objects kept)."""
        image, row, col, classes, _, kept = self._assign(targets)
        correct = ((self.probs[image, row, col].argmax(dim=-1) == classes) & kept).sum()
        return correct, kept.sum()

    def candidates(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Return every predictor's box (B, S*S*boxes, 4), clipped to the image, and its class scores (confidence x P(class))."""
        batch = len(self.raw)
        height, width = self.image_size
        boxes = self.boxes().reshape(batch, -1, 4)
        boxes = torch.stack([boxes[..., 0].clamp(0, width), boxes[..., 1].clamp(0, height),
                             boxes[..., 2].clamp(0, width), boxes[..., 3].clamp(0, height)], dim=-1)
        scores = self.confidence[..., None] * self.probs[:, :, :, None, :]  # (B, S, S, boxes, C)
        return boxes, scores.reshape(batch, boxes.shape[1], -1)


class YoloV1(nn.Module):
    """A YOLO v1 head on a stage of a zoo backbone: forward returns a YoloOutput."""

    def __init__(self, num_classes: int = 20, in_chans: int = 3, backbone: str = "mobilenet_v3_small",
                 stride: int = 16, boxes: int = 2, input_size: int = 128, width: int = 128,
                 coord: float = 5.0, noobj: float = 0.5, backbone_options: dict[str, object] | None = None) -> None:
        super().__init__()
        self.num_classes, self.boxes, self.coord, self.noobj = num_classes, boxes, coord, noobj
        self.backbone = Backbone(backbone, in_chans, (stride,), (in_chans, input_size, input_size), backbone_options)
        self.head = nn.Sequential(
            ConvNormAct(self.backbone.channels[0], width, 3, act_layer=LEAKY),
            ConvNormAct(width, width, 3, act_layer=LEAKY),
            conv1x1(width, boxes * 5 + num_classes, bias=True),
        )

    def load_backbone(self, state: dict[str, torch.Tensor], source: str) -> int:
        """Load a classifier's weights into the backbone (cnnlab.models.detector.Backbone); return the tensors taken."""
        return self.backbone.load_classifier(state, source)

    def feature_layers(self) -> list[str]:
        """Return the backbone's cut stage and the head's last hidden layer, shallow to deep."""
        return ["backbone.taps.0", "head.1"]

    def forward(self, x: torch.Tensor) -> YoloOutput:
        """Return the grid prediction of images (B, C, H, W)."""
        raw = self.head(self.backbone(x)[0]).permute(0, 2, 3, 1)  # (B, S, S, boxes*5 + C)
        return YoloOutput(raw, self.boxes, (x.shape[-2], x.shape[-1]), self.coord, self.noobj)


@register_model(family="yolo", paper=PAPER, year=2016, input_size=(3, 128, 128), classifier=False, detector=True,
                default_classes=20, min_train_size=64, min_eval_size=64)
def yolo_v1(**kwargs: object) -> YoloV1:
    """Return YOLO v1: S = input / 16 (8 at 128 px), B = 2, on MobileNet v3 small's stride-16 stage."""
    if "backbone" not in kwargs:
        # MobileNet v3's BatchNorm momentum is TensorFlow's 0.01, set for 600 ImageNet epochs; over the few
        # thousand steps a detector trains here its running statistics lagged the weights (validation loss
        # rose while the training loss fell) until they had PyTorch's usual 0.1.
        kwargs.setdefault("backbone_options", {"norm_momentum": 0.1})
    return YoloV1(**kwargs)
