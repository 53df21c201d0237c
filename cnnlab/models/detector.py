"""The detector contract: what a detection model returns, so the `detection` task trains any of them alike.

A detector's forward returns a DetectorOutput. It knows its own loss against the padded targets
(B, M, 5) of (class, x1, y1, x2, y2) rows in input pixels (class -1 pads), the class hits at the
places responsible for the objects (the training-time hit rate), and its candidates: every box
it scores, with one differentiable score per class, before any threshold or NMS. The task
decodes the candidates (threshold, per-class NMS, the top 100) and scores them with COCO's AP.
Heads read the backbone's stages through `feature_info`, so any zoo classifier can carry one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.models.base import FeatureInfo
from cnnlab.models.registry import create_model


class DetectorOutput(ABC):
    """One batch's raw detector output, with the loss, hits and candidates it implies."""

    @abstractmethod
    def loss(self, targets: torch.Tensor) -> torch.Tensor:
        """Return the detector's training loss (a scalar) against padded targets (B, M, 5)."""

    @abstractmethod
    def hits(self, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (objects whose responsible place predicts their class, objects), both device scalars."""

    @abstractmethod
    def candidates(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Return boxes (B, N, 4) x1y1x2y2 in input pixels and their class scores (B, N, K) in [0, 1]."""

    @abstractmethod
    def float(self) -> DetectorOutput:
        """Return the output with float32 tensors (after autocast)."""


def adapt_channels(weight: torch.Tensor, shape: torch.Size, key: str, source: str) -> torch.Tensor:
    """Return a first convolution's weight for another number of input channels: a grey one spread over RGB, or RGB summed."""
    if weight.ndim == 4 and weight.shape[0] == shape[0] and weight.shape[2:] == shape[2:]:
        if weight.shape[1] == 1:
            return weight.expand(-1, shape[1], -1, -1) / shape[1]
        if shape[1] == 1:
            return weight.sum(1, keepdim=True)
    raise CnnlabError(f"{source}: {key} has shape {tuple(weight.shape)}, the backbone needs {tuple(shape)}: "
                      "the weights are of another architecture or variant")


#: Optional columns of a target row after (class, x1, y1, x2, y2): the object's own area in input
#: pixels squared (COCO's `area`, a mask's pixel count, which its area bands use; a box's area stands
#: in without it), then its weight in the loss (MixUp's share of the image it came from; 1 without it).
AREA, WEIGHT = 5, 6


def object_weights(targets: torch.Tensor) -> torch.Tensor:
    """Return each row's weight in the loss (B, M) of padded targets: the weight column, else ones."""
    return targets[..., WEIGHT] if targets.shape[-1] > WEIGHT else torch.ones_like(targets[..., 0])


def object_rows(targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return (image index (n,), class (n,) int64, box (n, 4)) of the real rows of padded targets (B, M, 5+)."""
    image, row = torch.nonzero(targets[..., 0] >= 0, as_tuple=True)
    picked = targets[image, row]
    return image, picked[:, 0].long(), picked[:, 1:5]


def stage_for_stride(stages: list[FeatureInfo], stride: int) -> FeatureInfo:
    """Return the deepest stage whose total stride is `stride`, or one line naming the strides there are."""
    matching = [stage for stage in stages if stage.reduction == stride]
    if not matching:
        have = sorted({stage.reduction for stage in stages})
        raise CnnlabError(f"the backbone has no stage of stride {stride} (its stages have {have}): "
                          "choose another backbone or stride")
    return matching[-1]


class Backbone(nn.Module):
    """A zoo classifier cut after its deepest stage of the last stride asked for: forward returns those stages' maps.

    `strides` (shallow to deep) pick, for each, the deepest stage of that total stride; `channels`
    lists their widths. forward returns the maps (B, C_i, H/stride_i, W/stride_i) in that order.
    """

    def __init__(self, name: str, in_chans: int, strides: tuple[int, ...], input_size: tuple[int, int, int],
                 options: dict[str, object] | None = None) -> None:
        super().__init__()
        side, step = input_size[1], max(strides)
        if side % step:
            fit = max(step, round(side / step) * step)
            raise CnnlabError(f"input size {side} is not a multiple of the backbone's stride {step}: use input_size={fit}")
        # Imported here: torch.fx's tracer brings torch._dynamo and sympy (3 s), which no classifier needs.
        from torchvision.models.feature_extraction import create_feature_extractor

        classifier = create_model(name, num_classes=10, in_chans=in_chans, **(options or {}))
        if not hasattr(classifier, "feature_info"):
            raise CnnlabError(f"{name} describes no stages (feature_info): choose a zoo classifier as the backbone")
        stages = classifier.feature_info(input_size)
        self.stages = [stage_for_stride(stages, stride) for stride in strides]
        self.name, self.strides = name, tuple(strides)
        self.channels = tuple(stage.channels for stage in self.stages)
        # torch.fx keeps only what the chosen stages need: the deeper stages and the classifier go.
        try:
            nodes = {stage.module: f"map{i}" for i, stage in enumerate(self.stages)}  # the same in both modes
            self.body = create_feature_extractor(classifier, train_return_nodes=nodes, eval_return_nodes=nodes)
        except Exception as error:  # noqa: BLE001 - fx raises many kinds; the user's fix is the same
            raise CnnlabError(f"{name} cannot be cut at {self.stages[-1].module} ({type(error).__name__}): "
                              "choose another backbone") from None
        # fx calls the leaf layers directly, so a stage's own container never runs: each map passes an
        # identity instead, a module that hooks (Grad-CAM, activations) can read the map from.
        self.taps = nn.ModuleList(nn.Identity() for _ in self.stages)

    def load_classifier(self, state: dict[str, torch.Tensor], source: str) -> int:
        """Load the weights of a classifier of the backbone's architecture (a state dict); return how many tensors it took.

        The cut keeps the classifier's own names for its layers, so each tensor goes where its name
        says; a first convolution trained on grey images serves three channels as a third of it each
        (a grey image repeated to RGB then gives the same response).
        """
        ours = self.body.state_dict()
        taken = {}
        for key, value in ours.items():
            if key not in state:
                raise CnnlabError(f"{source} has no {key}: its weights are not a {self.name}'s; give a run or weights "
                                  f"file of {self.name}")
            theirs = state[key]
            if theirs.shape != value.shape:
                theirs = adapt_channels(theirs, value.shape, key, source)
            taken[key] = theirs
        self.body.load_state_dict(taken)
        return len(taken)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Return the chosen stages' feature maps, shallow to deep."""
        maps = self.body(x)
        return [tap(maps[f"map{i}"]) for i, tap in enumerate(self.taps)]
