"""The command line on a detection run: eval's AP, predict's drawn boxes, explain --box, data export, refusals."""

import json

import torch

from cnnlab.cli import main
from cnnlab.data.images import write_png
from cnnlab.data.sources import load


def test_eval_prints_ap_and_writes_pr_curves(detection_run, capsys) -> None:
    assert main(["eval", str(detection_run)]) == 0
    out = capsys.readouterr().out
    assert "AP " in out and "AP50" in out and "per-class AP" in out
    result = json.loads((detection_run / "eval.json").read_text())
    assert len(result["stats"]) == 12 and (detection_run / "pr_curves.png").stat().st_size > 0


def test_predict_draws_each_image_and_maps_boxes_back(detection_run, tmp_path, capsys) -> None:
    test = load("digits-det").test
    write_png(test.images[0], tmp_path / "square.png")
    write_png(torch.cat([test.images[1], test.images[2]], dim=2), tmp_path / "wide.png")  # 96 x 192: letterboxed
    assert main(["predict", str(detection_run), str(tmp_path / "square.png"), str(tmp_path / "wide.png"),
                 "--min-score", "0.05", "--out", str(tmp_path / "out")]) == 0
    data = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert [i["picture"] for i in data["images"]] == ["square.png", "wide.png"]
    wide = data["images"][1]
    assert (wide["height"], wide["width"]) == (96, 192) and wide["detections"]
    assert all(0 <= d["box"][0] <= d["box"][2] <= 192 and 0 <= d["box"][1] <= d["box"][3] <= 96 for d in wide["detections"])
    assert (tmp_path / "out" / "wide.png").stat().st_size > 0


def test_explain_box_writes_maps_of_the_boxs_class_score(detection_run, tmp_path) -> None:
    assert main(["explain", str(detection_run), "--box", "0", "--count", "2", "--method", "gradcam,saliency",
                 "--out", str(tmp_path / "maps")]) == 0
    written = sorted(p.name for p in (tmp_path / "maps").iterdir())
    assert "test0000_box0_grid.png" in written and "test0000_box0.json" in written
    record = json.loads((tmp_path / "maps" / "test0000_box0.json").read_text())
    assert record["methods"]["gradcam"]["layer"].startswith("model.detector.") and 0 < record["score"] <= 1


def test_a_box_score_is_the_candidates_and_leaves_the_detector_as_it_was(detection_run) -> None:
    from cnnlab.explain import PixelModel, attribute, hook_count
    from cnnlab.explain.kit.pixels import BoxScore
    from cnnlab.runs.load import load_run

    run = load_run(detection_run)
    detector = run.model.train()  # a mode the tool must give back
    before = {k: v.clone() for k, v in detector.state_dict().items()}
    images = load("digits-det").test.images[:2].float() / 255
    wrapped = PixelModel(BoxScore(detector, 5), run.normalisation.mean, run.normalisation.std)
    with torch.no_grad():
        direct = detector.eval()(run.normalisation(load("digits-det").test.images[:2])).candidates()[1][:, 5]
        detector.train()
        assert torch.allclose(wrapped.eval()(images), direct, atol=1e-5)
    detector.train()
    attribute(wrapped, images, "gradcam", torch.tensor([3, 3]))
    assert detector.training and hook_count(detector) == 0
    assert all(torch.equal(before[k], v) for k, v in detector.state_dict().items())


def test_detection_refusals_are_one_line(detection_run, tmp_path, capsys) -> None:
    cases = [
        (["explain", str(detection_run), "--count", "1"], "give --box K"),
        (["train", "small_cnn", "--data", "digits-det", "--out", str(tmp_path / "a"), "epochs=1"], "is no detector"),
        (["train", "yolo_v1", "--data", "digits", "--out", str(tmp_path / "b"), "epochs=1"], "has no boxes"),
        (["data", "export", "digits", "--out", str(tmp_path / "c")], "has no boxes"),
    ]
    for argv, words in cases:
        assert main(argv) == 2, argv
        error = capsys.readouterr().err
        assert words in error and error.count("\n") == 1, (argv, error)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_export_letterboxes_to_an_input_size(tmp_path, capsys) -> None:
    assert main(["data", "export", "digits-det", "--input-size", "48", "--out", str(tmp_path / "small")]) == 0
    again = load(f"coco:{tmp_path / 'small'}")
    original = load("digits-det").test
    assert again.test.images.shape[-2:] == (48, 48)
    assert torch.allclose(again.test.labels[:, : original.labels.shape[1], :5],
                          torch.where(original.labels[..., :1] >= 0, original.labels * torch.tensor([1, .5, .5, .5, .5]),
                                      original.labels), atol=1e-3)
