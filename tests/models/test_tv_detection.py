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


def test_mixups_weighted_boxes_are_refused_by_torchvisions_losses_in_one_line() -> None:
    model = create_model("tv/fasterrcnn_mobilenet_v3_large_fpn", num_classes=10, input_size=64).train()
    weighted = torch.cat([TARGETS, torch.full((*TARGETS.shape[:2], 2), 0.5)], -1)
    with pytest.raises(CnnlabError, match="leave mixup out"):
        model(torch.randn(len(TARGETS), 3, 64, 64)).loss(weighted)


def test_a_zoo_classifier_becomes_the_backbone_and_computes_the_same_maps() -> None:
    torch.manual_seed(0)
    classifier = create_model("mobilenet_v3_large", num_classes=10, in_chans=1).eval()
    detector = create_model("tv/fasterrcnn_mobilenet_v3_large_fpn", num_classes=10, input_size=128).eval()
    taken = detector.load_backbone(classifier.state_dict(), "a test classifier")
    assert taken == len(detector.model.backbone.body.state_dict())
    grey = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        ours = classifier.forward_features(grey)
        theirs = detector.model.backbone.body(grey.expand(-1, 3, -1, -1))["1"]  # the deepest map the FPN reads
    assert torch.allclose(ours, theirs, atol=1e-4)


def test_yolo_takes_its_backbone_from_a_classifier_by_name() -> None:
    torch.manual_seed(0)
    classifier = create_model("mobilenet_v3_small", num_classes=10, in_chans=1, norm_momentum=0.1).eval()
    yolo = create_model("yolo_v1", num_classes=10, in_chans=1).eval()
    yolo.load_backbone(classifier.state_dict(), "a test classifier")
    x = torch.randn(2, 1, 128, 128)
    with torch.no_grad():
        stage = dict(classifier.named_modules())[yolo.backbone.stages[0].module]
        seen = []
        handle = stage.register_forward_hook(lambda module, inputs, out: seen.append(out))
        classifier(x)
        handle.remove()
        assert torch.allclose(yolo.backbone(x)[0], seen[0], atol=1e-5)
    with pytest.raises(CnnlabError, match="not a mobilenet_v3_small"):
        yolo.load_backbone(create_model("small_cnn", num_classes=10, in_chans=1).state_dict(), "small_cnn weights")


def test_summary_and_rf_trace_every_tv_detector_layer_by_layer() -> None:
    """The lazy forward hides the layers; the trace runs backbone and heads instead, region heads at PROPOSALS regions."""
    from cnnlab.inspect.receptive import analytic_receptive_fields
    from cnnlab.inspect.summary import summary
    from cnnlab.models.tv_detection import DETECTIONS, PROPOSALS, TV_DETECTORS

    for name, size in TV_DETECTORS.items():
        table = summary(f"tv/{name}", (3, size or 128, size or 128))
        macs = {row.name: row.macs for row in table.layers}
        assert table.total_macs > 0 and any(".head." in n or ".roi_heads." in n for n in macs), name
        if name == "fasterrcnn_mobilenet_v3_large_fpn":
            # fc6 reads each region's 256 x 7 x 7 pooled map into 1,024 units (Ren et al. 2015's box head).
            assert macs["model.roi_heads.box_head.fc6"] == PROPOSALS * 256 * 7 * 7 * 1024
        if name == "maskrcnn_resnet50_fpn":  # a 1x1 conv from 256 channels to 92 masks of 28 x 28, per detection
            assert macs["model.roi_heads.mask_predictor.mask_fcn_logits"] == DETECTIONS * 256 * 92 * 28 * 28
    rows = analytic_receptive_fields("tv/fasterrcnn_mobilenet_v3_large_fpn", (3, 128, 128))
    assert (rows[0].receptive_field, rows[0].jump) == ((3, 3), (2, 2))  # the stem's 3x3 conv at stride 2
    # The RPN's conv runs once per pyramid level: strides 32 and 64 on this backbone, fields wider than the image.
    rpn = {r.jump: r.receptive_field for r in rows if r.name == "model.rpn.head.conv.0.0"}
    assert set(rpn) == {(32, 32), (64, 64)} and min(rpn.values())[0] > 128
