"""torchvision's detectors behind the detector contract (`tv/fasterrcnn_mobilenet_v3_large_fpn`, ...).

The R-CNN family, RetinaNet, FCOS and SSDlite take lists of images and, while training, lists
of target dicts, and return a dict of losses; in eval mode they return each image's boxes,
labels (1..K: 0 is their background) and scores. The adapter's forward returns a DetectorOutput
that calls them either way: `loss` in training mode (their own losses, summed), `candidates` in
eval mode (their own decoding, NMS included; the task's NMS at the same IoU changes nothing).
They score no validation loss (torchvision computes losses only in training mode: the figure is
NaN, and "best" goes by AP as always) and no training hit rate. Images are taken as cnnlab
normalised them (the internal transform's mean 0 and std 1, its resize at the run's input size),
and a grey image is repeated to three channels. No weights are downloaded: random initialisation,
or a state dict loaded by the user.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.models.detector import WEIGHT, DetectorOutput, object_rows

#: torchvision's detection builders the adapter knows, and whether the model resizes to a fixed side of its own.
TV_DETECTORS = {"fasterrcnn_mobilenet_v3_large_fpn": None, "fasterrcnn_resnet50_fpn": None,
                "retinanet_resnet50_fpn": None, "fcos_resnet50_fpn": None, "ssdlite320_mobilenet_v3_large": 320,
                "maskrcnn_resnet50_fpn": None}
PROPOSALS = 300  # region proposals kept after the RPN's NMS, in training and testing (torchvision: 2,000 and 1,000)
# Regions a training image samples for the box head: Fast R-CNN's 128 (Girshick 2015, R = 128), not torchvision's 512.
# The head's first layer reads 256 x 7 x 7 values per region, so on a CPU it dominates the step.
SAMPLED_REGIONS = 128
DETECTIONS = 100  # detections per image after the box heads (torchvision's box_detections_per_img), which the mask head sees


def _rgb(x: torch.Tensor) -> torch.Tensor:
    """Return images (B, 3, H, W): a grey batch repeated over the three channels torchvision's detectors take."""
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


class TvDetectorOutput(DetectorOutput):
    """A lazy call of a torchvision detector on one batch: losses when training, detections otherwise."""

    def __init__(self, adapter: TorchvisionDetector, x: torch.Tensor) -> None:
        self.adapter, self.x = adapter, x
        self._found: tuple[torch.Tensor, torch.Tensor] | None = None

    def float(self) -> TvDetectorOutput:
        """Return the output itself: torchvision's heads compute in float32."""
        return self

    def _images(self) -> list[torch.Tensor]:
        return list(_rgb(self.x))

    def loss(self, targets: torch.Tensor) -> torch.Tensor:
        """Return torchvision's summed losses (training mode), or NaN (eval mode: torchvision computes none)."""
        if not self.adapter.training:
            return torch.full((), float("nan"), device=self.x.device)
        if self.adapter.tv_name.startswith("maskrcnn"):
            raise CnnlabError("tv/maskrcnn_resnet50_fpn trains on instance masks, which cnnlab's box targets do not carry "
                              "yet: train tv/fasterrcnn_resnet50_fpn, its box-only sibling")
        if targets.shape[-1] > WEIGHT:
            raise CnnlabError(f"tv/{self.adapter.tv_name} takes no per-box weights, which MixUp's boxes carry: "
                              "leave mixup out (cutmix keeps whole boxes)")
        image, classes, boxes = object_rows(targets)
        wanted = [{"boxes": boxes[image == i], "labels": classes[image == i] + 1} for i in range(len(self.x))]
        losses = self.adapter.model(self._images(), wanted)
        return sum(losses.values())

    def hits(self, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (0, 0): torchvision's detectors give no predictions while training."""
        zero = torch.zeros((), device=self.x.device, dtype=torch.long)
        return zero, zero

    def candidates(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Return each image's detections (B, N, 4), padded with zero boxes, and their scores in their class's column."""
        if self._found is None:
            was = self.adapter.training
            self.adapter.model.eval()
            try:
                found = self.adapter.model(self._images())
            finally:
                self.adapter.model.train(was)
            most = max(1, *(len(f["boxes"]) for f in found))
            boxes = self.x.new_zeros(len(found), most, 4)
            scores = self.x.new_zeros(len(found), most, self.adapter.num_classes)
            for i, f in enumerate(found):
                count = len(f["boxes"])
                boxes[i, :count] = f["boxes"]
                scores[i, torch.arange(count, device=self.x.device), f["labels"] - 1] = f["scores"]
            self._found = (boxes, scores)
        return self._found


class TorchvisionDetector(nn.Module):
    """A torchvision detector whose forward returns a DetectorOutput; the network itself is `self.model`."""

    def __init__(self, model: nn.Module, name: str, num_classes: int) -> None:
        super().__init__()
        self.model, self.tv_name, self.num_classes = model, name, num_classes

    def forward(self, x: torch.Tensor) -> TvDetectorOutput:
        """Return the lazy output of normalised images (B, C, H, W)."""
        return TvDetectorOutput(self, x)

    def load_backbone(self, state: dict[str, torch.Tensor], source: str) -> int:
        """Load a zoo classifier's `features` into the backbone's body, tensor by tensor in order; return how many.

        The zoo registers its layers in torchvision's order (cnnlab.models.transfer), so the
        classifier's features and torchvision's backbone body list the same tensors in the same
        order under other names; every shape is checked, and a grey first convolution is spread over RGB.
        """
        from cnnlab.models.detector import adapt_channels

        body = self.model.backbone.body
        ours = list(body.state_dict().items())
        theirs = [(k, v) for k, v in state.items() if k.startswith("features.")]
        if len(theirs) != len(ours):
            raise CnnlabError(f"{source} holds {len(theirs)} feature tensors and the backbone of tv/{self.tv_name} "
                              f"{len(ours)}: give a run of its backbone's architecture (e.g. mobilenet_v3_large)")
        taken = {}
        for (key, value), (their_key, theirs_value) in zip(ours, theirs, strict=True):
            taken[key] = theirs_value if theirs_value.shape == value.shape else adapt_channels(
                theirs_value, value.shape, their_key, source)
        body.load_state_dict(taken)
        return len(taken)

    def traced_forward(self, x: torch.Tensor) -> Any:
        """Return the network's raw head outputs for images (B, C, H, W), for `cnnlab summary` and `rf` to trace.

        The forward itself is lazy and its decoding data-dependent, so a trace (on the meta device)
        runs the layers instead: the backbone and its feature pyramid, the dense heads, and for the
        two-stage models the region heads on PROPOSALS regions per image (DETECTIONS for the mask
        head), the counts torchvision's settings here give; pooling regions has no MACs.
        """
        model = self.model
        x = _rgb(x)
        # torchvision's own transform resizes (SSDlite to 320, a model built for another input size
        # to that size) and pads to its size divisor: the layers run at the size it gives. Where it
        # keeps the size, its output is left unused, so the receptive fields trace from the input.
        placed = model.transform(list(x))[0].tensors
        x = placed if placed.shape[-2:] != x.shape[-2:] else x
        features = model.backbone(x)
        maps = list(features.values()) if isinstance(features, dict) else [features]
        if not hasattr(model, "rpn"):
            return model.head(maps)  # RetinaNet, FCOS, SSD: dense heads over every level
        heads, channels = model.roi_heads, model.backbone.out_channels
        out = [model.rpn.head(maps)]
        side = heads.box_roi_pool.output_size[0]
        out.append(heads.box_predictor(heads.box_head(x.new_zeros(len(x) * PROPOSALS, channels, side, side))))
        if heads.has_mask():
            side = heads.mask_roi_pool.output_size[0]
            out.append(heads.mask_predictor(heads.mask_head(x.new_zeros(len(x) * DETECTIONS, channels, side, side))))
        return out

    def feature_layers(self) -> list[str]:
        """Return the backbone's body: the map the heads read."""
        return ["model.backbone.body"]


def create_tv_detector(name: str, num_classes: int = 91, input_size: int | None = None, **kwargs: Any) -> TorchvisionDetector:
    """Return torchvision's detector `name` for `num_classes` classes (plus its background), randomly initialised."""
    import torchvision

    if name not in TV_DETECTORS:
        raise CnnlabError(f"tv/{name} is not a detector cnnlab adapts: use one of {', '.join(TV_DETECTORS)}")
    options: dict[str, Any] = {"weights": None, "weights_backbone": None, "num_classes": num_classes + 1,
                               "image_mean": [0.0, 0.0, 0.0], "image_std": [1.0, 1.0, 1.0]}
    if TV_DETECTORS[name] is None and input_size is not None:
        options.update(min_size=input_size, max_size=input_size)
    if name.startswith(("fasterrcnn", "maskrcnn")):
        options.update(rpn_pre_nms_top_n_train=PROPOSALS * 2, rpn_pre_nms_top_n_test=PROPOSALS * 2,
                       rpn_post_nms_top_n_train=PROPOSALS, rpn_post_nms_top_n_test=PROPOSALS,
                       box_batch_size_per_image=SAMPLED_REGIONS)
    options.update(kwargs)
    model = torchvision.models.get_model(name, **options)
    return TorchvisionDetector(model, name, num_classes)
