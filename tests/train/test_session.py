"""The session builds the Trainer complete: its run directory and every callback, sorted, from construction on."""

import ast
from pathlib import Path

import pytest
import torch
from rich.console import Console

from cnnlab.errors import CnnlabError
from cnnlab.runs.recipe import load_recipe
from cnnlab.train.callbacks import TensorBoard
from cnnlab.train.distributed import Distributed
from cnnlab.train.parts import run_data
from cnnlab.train.session import Plan, open_session

QUIET = Console(file=open("/dev/null", "w"))  # noqa: SIM115 - lives for the test session
TRAIN = Path(__file__).resolve().parents[2] / "cnnlab" / "train"
CPU = torch.device("cpu")


def _session(out: Path, *overrides: str):
    recipe = load_recipe("digits", ("epochs=1", "data.train_images=256", *overrides))
    plan = Plan(None, "digits", recipe, None)
    parts = run_data(plan.spec, None, recipe, Distributed(), CPU)
    return open_session(plan, parts, str(out), Distributed(), CPU, QUIET)


def test_the_trainer_holds_its_run_and_sorted_callbacks_from_construction(tmp_path) -> None:
    # The writers are listed in another order than they run: the Trainer's one sort puts them in place.
    session = _session(tmp_path / "run", "optim.ema_decay=0.9", "schedule.early_stopping_patience=3", "diagnostics=true")
    trainer = session.trainer
    assert session.run == tmp_path / "run" and (session.run / "recipe.yaml").is_file()
    assert trainer.run == session.run and trainer.context.run == session.run
    expected = ["EMA", "EarlyStopping", *(["TensorBoard"] if TensorBoard.available() else []), "Checkpoints",
                "MetricsCSV", "Diagnostics", "ProgressBar"]
    assert [type(c).__name__ for c in trainer.callbacks] == expected
    assert [c.order for c in trainer.callbacks] == sorted(c.order for c in trainer.callbacks)
    bar = trainer.callbacks[-1]
    assert bar.steps == trainer.steps_per_epoch == 4  # 256 images in batches of 64
    assert session.model == "small_cnn"


@pytest.mark.parametrize("given", [False, True])
def test_a_refused_trainer_leaves_no_run_behind(tmp_path, given: bool) -> None:
    out = tmp_path / "refused"
    if given:
        out.mkdir()  # an empty folder the user named: it stays, empty
    with pytest.raises(CnnlabError, match="need a validation split"):
        _session(out, "data.val_fraction=0", "schedule.early_stopping_patience=3")
    assert out.is_dir() is given and (not given or not any(out.iterdir()))


def _late_assignments(tree: ast.AST, where: str) -> list[str]:
    """Return each `x.run = ...` / `x.callbacks = ...` of an object other than self, and the Trainer's own after construction."""
    late = []
    trainer = next((n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == "Trainer"), None)
    constructing = {id(n) for f in (trainer.body if trainer else []) if getattr(f, "name", "") == "__post_init__"
                    for n in ast.walk(f)}
    trainers = {id(n) for n in ast.walk(trainer)} if trainer else set()
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        for target in targets:
            if not isinstance(target, ast.Attribute) or target.attr not in ("run", "callbacks"):
                continue
            own = isinstance(target.value, ast.Name) and target.value.id == "self"
            if not own or (id(target) in trainers and id(target) not in constructing):
                late.append(f"{where}:{target.lineno} sets .{target.attr}")
    return late


def test_nothing_in_train_sets_a_trainers_run_or_callbacks_after_construction() -> None:
    late = [line for path in sorted(TRAIN.rglob("*.py"))
            for line in _late_assignments(ast.parse(path.read_text()), str(path.relative_to(TRAIN.parents[1])))]
    assert not late, late
