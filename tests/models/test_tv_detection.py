"""torchvision's detectors behind the detector contract: their own losses while training, their boxes in eval mode."""

import pytest
import torch

from cnnlab.errors import CnnlabError
from cnnlab.models import create_model
from cnnlab.models.registry import is_detector

TARGETS = torch.tensor([[[1.0, 10, 10, 40, 50], [3.0, 60, 60, 100, 100]], [[2.0, 5, 5, 30, 30], [-1, -1, -1, -1, -1]]])


def test_faster_rcnn_trains_by_its_own_losses_and_detects_in_eval_mode() -> None:
    torch.manual_seed(0)
    model = create_model("tv/fasterrcnn_mobilenet_v3_large_fpn", num_classes=10, in_chans=1, input_size=128)
    assert is_detector("tv/fasterrcnn_mobilenet_v3_large_fpn") and not is_detector("tv/resnet18")
    assert model.model.transform.min_size == (128,) and model.model.rpn._post_nms_top_n["testing"] == 300
    model.train()
    loss = model(torch.randn(2, 1, 128, 128)).loss(TARGETS)
    loss.backward()
    assert torch.isfinite(loss) and model.model.roi_heads.box_predictor.cls_score.weight.grad is not None
    model.eval()
    output = model(torch.randn(2, 1, 128, 128))
    assert torch.isnan(output.loss(TARGETS))  # torchvision computes no loss in eval mode
    boxes, scores = output.candidates()
    assert boxes.shape[:2] == scores.shape[:2] and scores.shape[2] == 10
    assert ((scores > 0).sum(-1) <= 1).all()  # each detection scores in its own class's column only


def test_mask_rcnn_without_masks_is_one_line() -> None:
    model = create_model("tv/maskrcnn_resnet50_fpn", num_classes=3, input_size=64).train()
    with pytest.raises(CnnlabError, match="instance masks"):
        model(torch.randn(2, 3, 64, 64)).loss(TARGETS.clamp_max(2))
