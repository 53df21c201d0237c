"""Transfer learning: what is copied, what is frozen and thawed, per-stage rates, the source's statistics, refusals."""

import json
from pathlib import Path

import pytest
import torch
from rich.console import Console

from cnnlab.errors import CnnlabError
from cnnlab.models.registry import create_model
from cnnlab.runs.checkpoint import load_checkpoint
from cnnlab.runs.load import load_run
from cnnlab.runs.paradigm import FinetuneConfig
from cnnlab.runs.recipe import OptimConfig
from cnnlab.train.optim import build_optimizer
from cnnlab.train.paradigms.finetune import Freezing, lr_scales, stages, transfer
from cnnlab.train.run import train_run
from tests.train.paradigms.rundigest import run_digest

QUIET = Console(file=open("/dev/null", "w"))  # noqa: SIM115 - lives for the test session
SOURCE_OVERRIDES = ("epochs=2", "data.input_size=32")


def _weights(run: Path, name: str = "last") -> dict[str, torch.Tensor]:
    model = create_model(json.loads((run / "data.json").read_text())["model"],
                         num_classes=len(json.loads((run / "data.json").read_text())["classes"]))
    load_checkpoint(run / "checkpoints" / name, model)
    return model.state_dict()


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("source") / "digits04"
    train_run("lenet5", "digits@0-4", out=str(run), recipe_name="digits", overrides=SOURCE_OVERRIDES, console=QUIET)
    return run


def _finetune(source: Path, out: Path, *overrides: str) -> dict:
    return train_run("lenet5", "digits@5-9", out=str(out), recipe_name=str(source / "recipe.yaml"),
                     overrides=(f"paradigm.finetune.source={json.dumps(str(source))}", *overrides), console=QUIET)


def test_stages_of_zoo_and_wrapped_models() -> None:
    assert [n for n, _ in stages(create_model("lenet5"))] == ["conv1", "conv2", "fc1", "fc2"]
    assert [n for n, _ in stages(create_model("resnet20"))] == ["stem", "stages.layer1", "stages.layer2", "stages.layer3"]
    assert [n for n, _ in stages(create_model("vgg11", num_classes=3))][-2:] == ["features.block5", "classifier"]
    wrapped = [n for n, _ in stages(create_model("tv/resnet18", num_classes=3))]
    assert wrapped == ["model.conv1", "model.bn1", "model.layer1", "model.layer2", "model.layer3", "model.layer4"]


def test_everything_but_the_head_is_copied(source, tmp_path) -> None:
    before = run_digest(source)
    _finetune(source, tmp_path / "all", "epochs=1", "paradigm.finetune.freeze_until=fc2")
    theirs, ours = _weights(source), _weights(tmp_path / "all")
    # Every stage frozen: the copied tensors leave training as they came; the head is new and trained.
    for key in theirs:
        if key.startswith("fc3"):
            continue
        assert torch.equal(theirs[key], ours[key]), key
    assert ours["fc3.weight"].shape == (5, 84)
    info = json.loads((tmp_path / "all" / "data.json").read_text())
    source_info = json.loads((source / "data.json").read_text())
    assert (info["mean"], info["std"]) == (source_info["mean"], source_info["std"])  # the source's statistics
    assert info["classes"] == list("56789")
    assert run_digest(source) == before  # the source run is read, never written
    assert all(p.requires_grad for p in load_run(tmp_path / "all").model.parameters())


def test_first_n_layers_only(source) -> None:
    model = create_model("lenet5", num_classes=5)
    torch.manual_seed(1)
    fresh = {k: v.clone() for k, v in create_model("lenet5", num_classes=5).state_dict().items()}
    model.load_state_dict(fresh)
    copied, norm = transfer(model, "lenet5", FinetuneConfig(source=str(source), layers=1))
    assert copied == 2  # conv1's weight and bias
    theirs, ours = _weights(source), model.state_dict()
    assert torch.equal(ours["conv1.conv.weight"], theirs["conv1.conv.weight"])
    assert torch.equal(ours["conv2.conv.weight"], fresh["conv2.conv.weight"])
    assert norm.mean == tuple(json.loads((source / "data.json").read_text())["mean"])


def test_gradual_unfreezing_by_hand() -> None:
    model = create_model("lenet5")
    freezing = Freezing(FinetuneConfig(source="x", freeze_until="fc1", unfreeze_every=2))
    assert [freezing.frozen_stages(model, e) for e in range(8)] == [3, 3, 2, 2, 1, 1, 0, 0]
    freezing.apply(model, 2)  # conv1, conv2 frozen; fc1 thawed; the head always trains
    assert [p.requires_grad for p in model.conv2.parameters()] == [False, False]
    assert all(p.requires_grad for m in (model.fc1, model.fc2, model.fc3) for p in m.parameters())


def test_thawed_stage_trains_after_its_epoch(source, tmp_path) -> None:
    _finetune(source, tmp_path / "thaw", "epochs=2", "paradigm.finetune.freeze_until=conv2",
              "paradigm.finetune.unfreeze_every=1")
    theirs, ours = _weights(source), _weights(tmp_path / "thaw")
    assert torch.equal(theirs["conv1.conv.weight"], ours["conv1.conv.weight"])  # thaws after epoch 2: never trained
    assert not torch.equal(theirs["conv2.conv.weight"], ours["conv2.conv.weight"])  # trained in epoch 2


def test_discriminative_rates_by_hand() -> None:
    model = create_model("lenet5")
    scales = lr_scales(model, FinetuneConfig(source="x", lr_decay=0.5))
    optimizer = build_optimizer(model, OptimConfig(lr=0.1), scales)
    rate = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    # Four stages below the head: conv1 at 0.1 * 0.5^4, ..., fc2 at 0.1 * 0.5; the head at 0.1.
    for module, power in ((model.conv1, 4), (model.conv2, 3), (model.fc1, 2), (model.fc2, 1), (model.fc3, 0)):
        assert all(rate[id(p)] == pytest.approx(0.1 * 0.5**power) for p in module.parameters())
    decays = {id(p): g["weight_decay"] for g in optimizer.param_groups for p in g["params"]}
    assert decays[id(model.fc1.bias)] == 0.0 and decays[id(model.fc1.weight)] > 0
    plain = build_optimizer(model, OptimConfig(lr=0.1))
    assert len(plain.param_groups) == 2


def test_weights_files_and_wrapped_models(source, tmp_path) -> None:
    from safetensors.torch import save_file

    state = _weights(source)
    save_file(state, str(tmp_path / "w.safetensors"))
    torch.save(state, tmp_path / "w.pth")
    for name in ("w.safetensors", "w.pth"):
        model = create_model("lenet5", num_classes=3)
        config = FinetuneConfig(source=str(tmp_path / name), mean=(0.5,), std=(0.25,))
        copied, norm = transfer(model, "lenet5", config)
        assert copied == 8 and norm.mean == (0.5,)
        assert torch.equal(model.state_dict()["fc2.weight"], state["fc2.weight"])
    with pytest.raises(CnnlabError, match="carries no input statistics"):
        transfer(create_model("lenet5", num_classes=3), "lenet5", FinetuneConfig(source=str(tmp_path / "w.pth")))
    import torchvision

    bare = torchvision.models.resnet18(num_classes=1000).state_dict()  # torchvision's own keys, ImageNet's head
    torch.save(bare, tmp_path / "r18.pth")
    wrapped = create_model("tv/resnet18", num_classes=4)
    copied, norm = transfer(wrapped, "tv/resnet18", FinetuneConfig(source=str(tmp_path / "r18.pth")))
    assert torch.equal(wrapped.model.layer4[1].conv2.weight, bare["layer4.1.conv2.weight"])
    assert wrapped.model.fc.out_features == 4 and norm.mean == (0.485, 0.456, 0.406)


def test_refusals_are_one_line(source, tmp_path) -> None:
    torch.save(create_model("lenet5_tiny").state_dict(), tmp_path / "tiny.pth")
    with pytest.raises(CnnlabError, match="another variant"):
        transfer(create_model("lenet5"), "lenet5", FinetuneConfig(source=str(tmp_path / "tiny.pth"), mean=(0.5,), std=(0.2,)))
    torch.save(create_model("resnet20").state_dict(), tmp_path / "r20.pth")
    with pytest.raises(CnnlabError, match="same architecture"):
        transfer(create_model("lenet5"), "lenet5", FinetuneConfig(source=str(tmp_path / "r20.pth"), mean=(0.5,), std=(0.2,)))
    with pytest.raises(CnnlabError, match="trained lenet5, not small_cnn"):
        transfer(create_model("small_cnn"), "small_cnn", FinetuneConfig(source=str(source)))
    with pytest.raises(CnnlabError, match="stages are conv1, conv2, fc1, fc2"):
        _finetune(source, tmp_path / "bad", "paradigm.finetune.freeze_until=layer9")
    assert not (tmp_path / "bad").exists()

    class Code:  # a pickle that would run code when unpickled
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"x": Code()}, tmp_path / "evil.pth")
    with pytest.raises(CnnlabError, match="cannot read safely|torch can read safely"):
        transfer(create_model("lenet5"), "lenet5", FinetuneConfig(source=str(tmp_path / "evil.pth"), mean=(0.5,), std=(0.2,)))
    with pytest.raises(CnnlabError, match="neither a run directory nor a weights file"):
        transfer(create_model("lenet5"), "lenet5", FinetuneConfig(source=str(tmp_path / "nothing"), mean=(0.5,), std=(0.2,)))


def test_resume_keeps_the_source_statistics(source, tmp_path, monkeypatch) -> None:
    from tests.train.interrupting import interrupt_at_step

    undo = interrupt_at_step(monkeypatch, 14)  # in epoch 2 (11 steps an epoch)
    with pytest.raises(KeyboardInterrupt):
        _finetune(source, tmp_path / "part", "epochs=2", "paradigm.finetune.freeze_until=conv1")
    undo()
    whole = _finetune(source, tmp_path / "whole", "epochs=2", "paradigm.finetune.freeze_until=conv1")
    resumed = train_run(resume=str(tmp_path / "part"), console=QUIET)
    assert resumed["test_top1"] == whole["test_top1"]
    a, b = _weights(tmp_path / "part"), _weights(tmp_path / "whole")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_command_line_refusals(source, tmp_path, capsys) -> None:
    from cnnlab.cli import main

    torch.save(create_model("lenet5").state_dict(), tmp_path / "w.pth")
    assert main(["finetune", str(tmp_path / "w.pth"), "--data", "digits"]) == 2
    assert "is a weights file: name its architecture after it, e.g. cnnlab finetune" in capsys.readouterr().err
    assert main(["finetune", str(source), "--data", "digits@5-9", "--freeze-until", "nope", "--out", str(tmp_path / "x")]) == 2
    assert "no stage 'nope' to freeze up to" in capsys.readouterr().err
    assert main(["noisy-student", "small_cnn", "--data", "digits", "--labelled-fraction", "0.1", "--rounds", "1",
                 "--teacher-model", "small_cnn", "--hard", "--threshold", "2", "--out", str(tmp_path / "ns")]) == 2
    assert "argument --threshold: 2 must be < 1" in capsys.readouterr().err
    assert not (tmp_path / "ns").exists()
