"""COCO folders: written and read back exactly, letterboxed when sizes differ, and bad input left out or refused in one line."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cnnlab.data.boxes import box_area
from cnnlab.data.coco import read_coco, save_directly, write_coco
from cnnlab.data.images import write_png
from cnnlab.data.sources import load
from cnnlab.errors import CnnlabError

ROOT = Path(__file__).resolve().parents[2]


def _folder(tmp_path: Path, annotations: list[dict], sizes=((48, 48), (48, 48)), categories=None) -> Path:
    """Write grey images of the given (height, width) and a COCO JSON naming them; return the folder."""
    folder = tmp_path / "coco"
    (folder / "images").mkdir(parents=True)
    images = []
    for index, (height, width) in enumerate(sizes):
        write_png(torch.full((1, height, width), 40 * (index + 1), dtype=torch.uint8), str(folder / "images" / f"{index}.png"))
        images.append({"id": index + 1, "file_name": f"{index}.png", "height": height, "width": width})
    categories = categories or [{"id": 7, "name": "cat"}, {"id": 3, "name": "dog"}]
    (folder / "instances.json").write_text(json.dumps({"images": images, "annotations": annotations,
                                                       "categories": categories}))
    return folder


def _note(image: int, category: int, box: list, **extra) -> dict:
    return {"id": 0, "image_id": image, "category_id": category, "bbox": box, "iscrowd": 0, **extra}


def test_categories_are_sorted_by_id_and_boxes_become_rows(tmp_path) -> None:
    folder = _folder(tmp_path, [_note(1, 7, [2, 3, 10, 20], area=150), _note(1, 3, [20, 20, 8, 8])])
    read = read_coco(folder)
    assert read.classes == ("dog", "cat")  # ids 3, 7
    assert read.images.shape == (2, 1, 48, 48) and read.targets.shape == (2, 2, 6)
    # The sixth column is the annotation's own area (its mask's), the box's where it gives none.
    assert read.targets[0].tolist() == [[1.0, 2, 3, 12, 23, 150], [0.0, 20, 20, 28, 28, 64]]
    assert read.targets[1].tolist() == [[-1.0] * 6] * 2  # no annotation: kept, as background
    assert read.summary("x") == ""
    halved = read_coco(folder, size=24)  # letterboxed to half: the area to a quarter
    assert halved.targets[0].tolist() == [[1.0, 1, 1.5, 6, 11.5, 37.5], [0.0, 10, 10, 14, 14, 16]]


def test_the_annotations_area_decides_the_area_band_as_in_cocoeval() -> None:
    """A 40x40 box (medium) whose mask covers 900 px (small) counts as small, as COCO's own area says."""
    from cnnlab.train.tasks.coco_ap import Detected, evaluate
    from cnnlab.train.tasks.detection import truth_of

    rows = torch.tensor([[0.0, 10, 10, 50, 50, 900]])
    found = [Detected(rows[:, 1:5].double().numpy(), torch.tensor([0.9]).double().numpy(), torch.tensor([0]).numpy())]
    with_area = evaluate([truth_of(rows)], found, [0]).stats
    box_only = evaluate([truth_of(rows[:, :5])], found, [0]).stats
    assert with_area["AP_small"] == pytest.approx(1.0) and with_area["AP_medium"] == -1
    assert box_only["AP_medium"] == pytest.approx(1.0) and box_only["AP_small"] == -1


def test_bad_annotations_and_images_are_left_out_and_counted(tmp_path) -> None:
    notes = [
        _note(1, 7, [40, 40, 20, 20]),  # reaches outside: clipped to (40, 40, 48, 48)
        _note(1, 7, [60, 60, 5, 5]),  # wholly outside its image
        _note(1, 7, [5, 5, -3, 4]),  # negative width
        _note(1, 99, [5, 5, 4, 4]),  # unknown category
        _note(1, 7, [5, 5, 9, 9], iscrowd=1),  # a crowd region
        _note(4, 7, [5, 5, 9, 9]),  # the image whose file is missing
        _note(8, 7, [5, 5, 9, 9]),  # an image id nobody names
    ]
    folder = _folder(tmp_path, notes, sizes=((48, 48), (48, 48), (48, 48)))
    (folder / "images" / "1.png").write_bytes(b"not a png")  # unreadable
    data = json.loads((folder / "instances.json").read_text())
    data["images"].append({"id": 4, "file_name": "missing.png"})
    (folder / "instances.json").write_text(json.dumps(data))
    read = read_coco(folder)
    assert len(read.images) == 2 and read.images_left_out == 2
    assert read.targets[0, 0].tolist() == [1.0, 40, 40, 48, 48, 64]  # no area given: the clipped box's
    assert dict(read.left_out) == {"boxes outside their image": 1, "boxes of zero or negative width or height": 1,
                                   "boxes of unknown category ids": 1, "crowd regions": 1,
                                   "boxes of unknown or unread images": 2, "missing or unreadable images": 2}
    line = read.summary("coco:x")
    assert line.startswith("coco:x: left out") and "\n" not in line and "no box of dog" in line


def test_nan_boxes_and_bad_categories_do_not_pass(tmp_path) -> None:
    folder = _folder(tmp_path, [_note(1, 7, [1, 1, float("nan"), 5]), _note(1, [7], [1, 1, 5, 5]), _note(1, 7, [1, 1, 5, 5])])
    read = read_coco(folder)
    assert read.targets.shape[1] == 1 and read.targets[0, 0, :5].tolist() == [1.0, 1, 1, 6, 6]
    assert read.left_out["annotations without an [x, y, w, h] bbox"] == 1
    assert read.left_out["boxes of unknown category ids"] == 1
    data = json.loads((folder / "instances.json").read_text())
    data["categories"].append({"id": "9", "name": "text id"})
    (folder / "instances.json").write_text(json.dumps(data))
    with pytest.raises(CnnlabError, match="integer id"):
        read_coco(folder)


def test_a_colour_image_among_grey_ones_keeps_its_colour(tmp_path) -> None:
    folder = _folder(tmp_path, [])
    write_png(torch.zeros(3, 48, 48, dtype=torch.uint8), folder / "images" / "1.png")
    assert read_coco(folder).images.shape[1] == 3


@pytest.mark.parametrize(("content", "words"), [
    ("", "is empty"), ('{"images": [{"id": 1', "is not valid JSON"), ('{"images": []}', "has no annotations, categories"),
])
def test_a_damaged_json_is_one_line(tmp_path, content: str, words: str) -> None:
    folder = _folder(tmp_path, [])
    (folder / "instances.json").write_text(content)
    with pytest.raises(CnnlabError, match=words) as caught:
        read_coco(folder)
    assert "\n" not in str(caught.value) and "instances.json" in str(caught.value)


def test_images_of_mixed_sizes_are_letterboxed_with_their_boxes(tmp_path) -> None:
    folder = _folder(tmp_path, [_note(1, 7, [10, 0, 20, 40]), _note(2, 3, [0, 0, 30, 30])], sizes=((40, 80), (30, 30)))
    with pytest.raises(CnnlabError, match="with input_size=N"):
        read_coco(folder)
    read = read_coco(folder, size=64)
    assert read.images.shape == (2, 1, 64, 64)
    # 40 x 80 scaled by 64 / 80 = 0.8 to 32 x 64, centred: 16 rows of padding above.
    assert read.targets[0, 0, :5].tolist() == pytest.approx([1.0, 8.0, 16.0, 24.0, 48.0])
    assert read.images[0, 0, 15].max() == 0 and read.images[0, 0, 16].min() > 0
    assert read.targets[1, 0, :5].tolist() == pytest.approx([0.0, 0.0, 0.0, 64.0, 64.0])


def test_an_exported_set_reads_back_as_the_same_data(tmp_path) -> None:
    splits = load("digits-det")
    out = tmp_path / "exported"
    done = subprocess.run([sys.executable, "-m", "cnnlab", "data", "export", "digits-det", "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-800:]
    assert "wrote" in done.stdout and (out / "train" / "instances.json").is_file()
    again = load(f"coco:{out}")
    assert again.train.classes == splits.train.classes
    for mine, theirs in ((again.train, splits.train), (again.test, splits.test)):
        assert torch.equal(mine.images, theirs.images)
        rows = theirs.labels.shape[1]
        assert torch.allclose(mine.labels[:, :rows, :5], theirs.labels, atol=1e-3)
        real = theirs.labels[..., 0] >= 0  # the area written is the box's, and it comes back as the sixth column
        assert torch.allclose(mine.labels[:, :rows, 5][real], box_area(theirs.labels[..., 1:5])[real], atol=1e-2)


def test_writing_through_save_names_every_file(tmp_path) -> None:
    images = torch.zeros(2, 1, 16, 16, dtype=torch.uint8)
    targets = torch.tensor([[[0.0, 1, 2, 5, 6]], [[-1.0, -1, -1, -1, -1]]])
    path = write_coco(save_directly(tmp_path), "part", images, targets, ("a",))
    data = json.loads(path.read_text())
    assert [a["bbox"] for a in data["annotations"]] == [[1, 2, 4, 4]] and data["categories"] == [{"id": 1, "name": "a"}]
    assert sorted(p.name for p in (tmp_path / "part" / "images").iterdir()) == ["000000.png", "000001.png"]


def test_a_detector_trains_on_a_coco_folder_of_mixed_sizes_and_scores_it(tmp_path) -> None:
    from rich.console import Console

    from cnnlab.train.evaluation import evaluate_run
    from cnnlab.train.run import train_run

    splits = load("digits-det")
    for name, part, count in (("train", splits.train, 160), ("test", splits.test, 40)):
        write_coco(save_directly(tmp_path / "set"), name, part.images[:count], part.labels[:count], splits.train.classes)
    # One test image twice as wide: letterboxed to 64 x 64 with its boxes.
    wide = torch.cat([splits.test.images[0], splits.test.images[1]], dim=2)
    write_png(wide, tmp_path / "set" / "test" / "images" / "000000.png")
    quiet = Console(file=open("/dev/null", "w"))  # noqa: SIM115 - closed with the process
    result = train_run("yolo_v1", f"coco:{tmp_path / 'set'}", out=str(tmp_path / "run"), console=quiet,
                       overrides=("epochs=1", "input_size=64", "batch_size=32"))
    assert json.loads((tmp_path / "run" / "data.json").read_text())["task"] == "detection"
    evaluation = evaluate_run(tmp_path / "run")
    assert evaluation["images"] == 40 and evaluation["ap"] == result["test_ap"]
