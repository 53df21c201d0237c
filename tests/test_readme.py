"""Every example in the README runs and shows what the README says it shows.

Python blocks: each `print(...)  # expected` line must print that text (before any ': why').
CLI lines: each must exit 0 and print the fragments EXPECTED names for it; a new line needs an entry.
"""

import re
import shlex
from pathlib import Path

import pytest

from cnnlab import __version__
from cnnlab.cli import main

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)
CLI_LINES = [
    line.split("  #")[0].strip()
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S)
    for line in block.splitlines()
    if line.startswith("cnnlab ")
]
EXPECTED = {
    "cnnlab --version": [f"cnnlab {__version__}"],
    "cnnlab arith conv --input 32x32 --kernel 3 --stride 2 --padding same --in-channels 3 --out-channels 64":
        ["output size      16x16", "padding used     0+1 x 0+1", "parameters       1,792", "MACs             442,368"],
    "cnnlab arith tconv --input 7 --kernel 4 --stride 2 --padding 1": ["output size      14  (input 7)"],
    "cnnlab arith pool --input 112 --kernel 3 --stride 2 --ceil-mode": ["output size      56  (input 112)"],
    "cnnlab models 'resnet*'": ["resnet50", "25,557,032", "4.089", "resnet20", "269,722"],
    "cnnlab summary vgg16 --input 3x224x224": ["138,357,544", "features"],
    "cnnlab summary tv/resnet18 --input 3x224x224 --format json": ['"total_params": 11689512'],
    "cnnlab summary torchvision.models:mobilenet_v2 --input 3x224x224 --format csv": ["features.0.0,Conv2d,32x112x112"],
    "cnnlab rf torchvision.models:alexnet --input 3x224x224 --erf --layer features.12 --samples 2":
        ["195x195", "effective receptive field"],
    "cnnlab train --out runs/demo --epochs 30": ["test accuracy", "on 359 held-out images", "runs/demo"],
    "cnnlab train --out runs/tuned --recipe digits optim.lr=0.005 augment.crop_padding=1 epochs=20": ["test accuracy"],
    "cnnlab train --resume runs/tuned": ["test accuracy", "after 20 epochs"],  # its own recipe: epochs=20
    "cnnlab augment --data digits --policy flip,rotate:degrees=20,randaugment:n=1:magnitude=9,cutout:size=3 --n 8 --out runs":
        ["wrote runs/augment.png: 8 images x 7 draws of flip -> rotate -> randaugment -> cutout"],
    "cnnlab augment --list": ["geometric:", "  elastic          p=1.0, alpha=34.0, sigma=4.0", "policies:"],
    "cnnlab train --out runs/mixed --epochs 5 'augment=[{op: translate, padding: 1}, {op: trivialaugment}, {op: mixup, alpha: 0.4}]'":
        ["test accuracy", "runs/mixed"],
    "cnnlab distill small_cnn --teacher runs/demo --out runs/student --epochs 10":
        ["test accuracy", "runs/student"],
    "cnnlab eval runs/demo runs/tuned runs/student --out runs/ensemble":
        ["ensemble of 3 models (mean probability)", "best member", "wrote runs/ensemble/eval.json"],
    "cnnlab train --out runs/snap --epochs 9 schedule.name=cyclic schedule.cycles=3 paradigm.snapshot.enabled=true":
        ["test accuracy", "runs/snap"],
    "cnnlab eval runs/snap --snapshots": ["runs/snap (snapshot-3)", "ensemble of 3 models"],
    "cnnlab train --out runs/swa --epochs 10 paradigm.swa.start_epoch=7": ["test accuracy", "swa weights"],
    "cnnlab train --out runs/crops --epochs 10 'augment=[{op: random_crop, size: 6}]' evaluation.crop=6":
        ["test accuracy", "runs/crops"],
    "cnnlab eval runs/crops runs/snap --tta-table --crop 6": ["crops of 6 px", "10 crops", "multi-scale"],
    "cnnlab noisy-student small_cnn --data digits --labelled-fraction 0.1 --rounds 2 --teacher-model small_cnn --teacher-epochs 20 --epochs 5 --out runs/noisy data.val_fraction=0":
        ["teacher   small_cnn", "round-2   small_cnn", "wrote runs/noisy/rounds.json"],
    "cnnlab finetune runs/demo --data digits@5-9 --freeze-until stages.0 --lr-decay 0.5 --out runs/finetuned --epochs 5":
        ["fine-tuning from", "a fresh head for 5 classes", "test accuracy", "runs/finetuned"],
    "cnnlab eval runs/demo --format json": ['"images": 359', '"weights": {', '"checkpoint": "best"'],
    "cnnlab explain runs/demo --method gradcam,integrated_gradients,lrp --count 2 --option steps=16":
        ["explained 2 images with 3 methods", "runs/demo/explain"],
    "cnnlab sanity runs/demo --method saliency,gradcam --count 4": ["saliency: after", "spearman |map|", "sanity.png"],
    "cnnlab faithfulness runs/demo --method saliency,gradcam --count 4 --no-sensitivity": ["deletion", "gradcam", "random"],
    "cnnlab attack runs/demo --method pgd --eps 0.3 --steps 10 --count 200 --eps-list 0,0.1,0.3":
        ["pgd eps 0.3 (linf) on 200 test images", "fgsm: eps 0", "runs/demo/attack"],
    "cnnlab visualize filters runs/demo": ["runs/demo/filters.png"],
    "cnnlab visualize features runs/demo": ["runs/demo/features.png"],
    "cnnlab visualize exemplars runs/demo --channels 0-3 --top 4 --count 200": ["runs/demo/exemplars.png"],
    "cnnlab visualize embedding runs/demo --count 300": ["runs/demo/embedding_pca.png"],
    "cnnlab visualize dream runs/demo --channels 0-3 --steps 32": ["channel mean activations: 0:", "runs/demo/dream.png"],
    "cnnlab style runs/demo/features.png runs/demo/filters.png --size 48 --steps 20 --out runs": ["x lower); content loss", "runs/style.png"],
    "cnnlab train --out runs/health --epochs 3 diagnostics=true report=true": ["test accuracy", "wrote runs/health/report.html"],
    "cnnlab report runs/demo --method gradcam,saliency": ["wrote runs/demo/report.html"],
    "cnnlab compare runs/demo runs/tuned runs/health --out runs": ["wrote runs/compare.html"],
    "cnnlab train lenet5 --data digits --recipe lenet-mnist --out runs/lenet input_size=28": ["test accuracy", "runs/lenet"],
    "cnnlab train --devices 2 --device cpu --out runs/ddp": ["test accuracy", "runs/ddp"],
    "cnnlab train --data digits-seg --out runs/seg": ["test pixel accuracy", "mIoU", "on 400 held-out images"],
    "cnnlab eval runs/seg": ["digits-seg test: pixel accuracy", "mIoU", "(400 images, best weights"],
    "cnnlab train yolo_v1 --data digits-det --recipe detection --out runs/det epochs=3":
        ["test AP", "AP50", "on 400 held-out images", "runs/det"],
    "cnnlab eval runs/det": ["digits-det test: AP", "AP50", "per-class AP", "pr_curves.png"],
    "cnnlab explain runs/det --box 0 --count 1": ["box 0"],
    "cnnlab data export digits-det --out runs/digits-coco": ["instances.json", "400 images"],
    "cnnlab train yolo_v1 --data coco:runs/digits-coco --out runs/det-coco epochs=1": ["test AP", "runs/det-coco"],
}
NEEDS_REAL_DATA = "--data-dir"


def _expected_prints(code: str) -> list[str]:
    return [line.split("#", 1)[1].strip().split(": ")[0] for line in code.splitlines()
            if line.lstrip().startswith("print(") and "#" in line]


@pytest.mark.parametrize("code", PYTHON_BLOCKS)
def test_python_example_prints_what_it_says(code: str) -> None:
    printed: list[str] = []

    def record(*values: object) -> None:
        printed.append(" ".join(str(v) for v in values))

    exec(compile(code, "README.md", "exec"), {"print": record})
    prints = [line for line in code.splitlines() if line.lstrip().startswith("print(")]
    commented = [i for i, line in enumerate(prints) if "#" in line]
    expected = _expected_prints(code)
    assert [printed[i] for i in commented] == expected


def test_every_cli_line_has_its_expectation() -> None:
    missing = [line for line in CLI_LINES if line not in EXPECTED and NEEDS_REAL_DATA not in line]
    assert not missing, missing


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """One folder for all CLI lines, in README order: `eval runs/demo` reads what `train` wrote."""
    return tmp_path_factory.mktemp("readme")


@pytest.mark.parametrize("line", CLI_LINES)
def test_cli_example_shows_what_it_says(line: str, workdir, monkeypatch, capfd) -> None:
    monkeypatch.chdir(workdir)  # `cnnlab train` writes runs/ here, not into the checkout
    monkeypatch.setenv("COLUMNS", "200")  # rich tables wide enough for whole numbers
    argv = shlex.split(line)[1:]
    if NEEDS_REAL_DATA in argv:
        pytest.skip("trains on 60,000 real images: minutes on a CPU, run by hand")
    if argv[0] == "train" and "--resume" not in argv and not any(a.startswith(("paradigm.", "epochs=")) for a in argv):
        argv += ["--epochs", "2"]  # the README's 30 epochs are what `make run` shows; 2 prove it runs
        # (paradigm lines keep theirs: snapshot cycles and the averaging's start are counted in epochs; a line that
        # sets epochs= keeps it too, since a flag beside the same override is refused)
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    out = capfd.readouterr().out
    assert code == 0, line
    for fragment in EXPECTED[line]:
        assert fragment in out, (line, fragment, out[-1500:])


def test_readme_opens_with_the_two_commands() -> None:
    first_block = re.search(r"```bash\n(.*?)```", README, flags=re.S).group(1)
    commands = [line.split("#")[0].strip() for line in first_block.splitlines()]
    assert commands == ["make run", "make test"]
