"""The second hardening's cases that need a run: outputs that could overwrite it, and errors found after parsing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PIL import Image

from cnnlab.cli import main


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("hardening") / "run"
    assert main(["train", "--out", str(run_dir), "--epochs", "1", "--seed", "0"]) == 0
    return run_dir


def _snapshot(run_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}


def _one_line(err: str) -> bool:
    return len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("argv", [
    ["report", "{run}", "--method", "none", "--out", "{run}/summary.json"],
    ["report", "{run}", "--method", "none", "--out", "{run}/metrics.csv"],
    ["compare", "{run}", "--out", "{run}/summary.json"],
    ["compare", "{run}", "--out", "{run}/metrics.csv"],
    ["augment", "--data", "digits", "--policy", "flip", "--out", "{run}/data.json"],
    ["augment", "--data", "digits", "--policy", "flip", "--out", "{run}/checkpoints/last"],
    ["visualize", "filters", "{run}", "--out", "{run}/recipe.yaml"],
    ["visualize", "features", "{run}", "--out", "{run}/x.json"],
    ["style", "{image}", "{image}", "--steps", "1", "--size", "16", "--out", "{run}/summary.json"],
])
def test_no_output_path_replaces_a_runs_own_files(capsys, trained: Path, tmp_path: Path, argv: list[str]) -> None:
    Image.effect_noise((32, 32), 60).convert("RGB").save(tmp_path / "noise.png")
    before = _snapshot(trained)
    words = [w.format(run=trained, image=tmp_path / "noise.png") for w in argv]
    code, _, err = run(capsys, *words)
    assert code == 2 and _one_line(err) and "--out" in err, err
    assert _snapshot(trained) == before  # nothing of the run changed, no temporary file left in it


def test_side_cars_go_beside_the_output_under_their_own_names(capsys, tmp_path: Path) -> None:
    code, _, err = run(capsys, "augment", "--data", "digits", "--policy", "flip", "--n", "2", "--out", str(tmp_path / "x.json"))
    assert code == 2 and "names a file: --out takes the folder" in err and not (tmp_path / "x.json").exists()
    code, _, err = run(capsys, "augment", "--data", "digits", "--policy", "flip", "--n", "2", "--out", str(tmp_path / "a"))
    assert code == 0 and sorted(p.name for p in (tmp_path / "a").iterdir()) == ["augment.json", "augment.png"]
    assert Image.open(tmp_path / "a" / "augment.png").format == "PNG"


def test_an_existing_file_where_a_folder_is_meant_is_refused(capsys, trained: Path, tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("keep me")
    code, _, err = run(capsys, "compare", str(trained), "--out", str(tmp_path / "taken"))
    assert code == 2 and _one_line(err) and "is an existing file" in err
    assert (tmp_path / "taken").read_text() == "keep me"


def test_a_failed_write_leaves_no_temporary_file_and_names_the_users_path(capsys, trained: Path, tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    (folder / "augment.png").mkdir()  # the fixed name is taken by a folder: the rename must fail
    code, _, err = run(capsys, "augment", "--data", "digits", "--policy", "flip", "--n", "2", "--out", str(folder))
    assert code == 2 and _one_line(err), err
    assert f"cannot write {folder / 'augment.png'} " in err and ".tmp" not in err and ".augment-" not in err
    assert sorted(p.name for p in folder.iterdir()) == ["augment.png"]  # no temporary sibling left


def test_a_failing_command_leaves_no_empty_out_folder(capsys, tmp_path: Path) -> None:
    out = tmp_path / "ns" / "deeper"
    code, _, err = run(capsys, "noisy-student", "small_cnn", "--data", "digits", "--labelled-fraction", "0.1", "--rounds", "1",
                       "--teacher-model", "no_such_model", "--out", str(out))
    assert code == 2 and _one_line(err)
    assert not (tmp_path / "ns").exists()
    code, _, err = run(capsys, "experiment", "shuffled-pixels", "--steps", "2", "--train-images", "64", "--data", "digits",
                       "--out", str(tmp_path / "exp"), "no.such.key=1")
    assert code == 2 and _one_line(err) and "unknown recipe key no" in err
    assert not (tmp_path / "exp").exists()
    code, _, err = run(capsys, "experiment", "shuffled-pixels", "--data", "digits", "--steps", "1", "--train-images", "100000",
                       "--out", str(tmp_path / "abl" / "inner"))
    assert code == 2 and _one_line(err) and "data.train_images=100000" in err and not (tmp_path / "abl").exists()
    code, _, err = run(capsys, "train", "no_such_model", "--out", str(tmp_path / "t" / "run"))
    assert code == 2 and not (tmp_path / "t").exists()


def test_experiment_takes_the_overrides_its_errors_advise(capsys) -> None:
    from cnnlab.cli import build_parser, parse
    from cnnlab.cli.reconcile import settle

    args = settle(parse(build_parser(), ["experiment", "degradation", "data.input_size=32"]))
    assert args.overrides == ["data.input_size=32"]


def test_method_options_are_typed_per_method(capsys, trained: Path) -> None:
    for option, method, words in (("noise=nan", "smoothgrad", "smoothgrad option key noise takes a finite number"),
                                  ("steps=abc", "integrated_gradients", "steps takes a number (int), got 'abc'"),
                                  ("samples=xyz", "lime", "samples takes a number (int), got 'xyz'"),
                                  ("p=1.5", "rise", "rise option p=1.5 must be <= 1"),
                                  ("upsample=sideways", "gradcam", "is not one of resize, field")):
        code, _, err = run(capsys, "explain", str(trained), "--method", method, "--option", option)
        assert code == 2 and _one_line(err) and words in err, err
        assert not (trained / "explain").exists()


def test_faithfulness_refuses_more_steps_than_pixels(capsys, trained: Path, tmp_path: Path) -> None:
    code, _, err = run(capsys, "faithfulness", str(trained), "--count", "1", "--steps", "100000", "--out", str(tmp_path / "f"))
    assert code == 2 and _one_line(err) and "more than the 64 pixels" in err and "--steps 64" in err
    assert not (tmp_path / "f").exists()


def test_dream_at_a_layer_without_maps_is_one_line(capsys, trained: Path) -> None:
    from cnnlab.runs.load import load_run

    linear = next(name for name, module in load_run(trained).model.named_modules() if module.__class__.__name__ == "Linear")
    code, _, err = run(capsys, "visualize", "dream", str(trained), "--layer", linear, "--steps", "2")
    assert code == 2 and _one_line(err) and "not (N, C, H, W) maps" in err
    code, _, err = run(capsys, "visualize", "dream", str(trained), "--layer", "nope", "--steps", "2")
    assert code == 2 and _one_line(err)


def test_style_with_a_grey_run_and_lbfgs(capsys, trained: Path, tmp_path: Path) -> None:
    Image.effect_noise((32, 32), 60).convert("RGB").save(tmp_path / "noise.png")
    Image.linear_gradient("L").resize((32, 32)).convert("RGB").save(tmp_path / "content.png")
    code, out, err = run(capsys, "style", str(tmp_path / "content.png"), str(tmp_path / "noise.png"), "--features", str(trained),
                         "--size", "16", "--steps", "3", "--optimiser", "lbfgs", "--out", str(tmp_path / "s"))
    assert code == 0, err
    losses = json.loads((tmp_path / "s" / "style.json").read_text())
    assert losses["style_end"] < losses["style_start"]
    code, _, err = run(capsys, "style", str(tmp_path / "content.png"), str(tmp_path / "noise.png"), "--out", str(tmp_path / "x.json"))
    assert code == 2 and _one_line(err) and "names a file" in err


def test_sanity_names_a_random_labels_run_of_other_data(capsys, trained: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    assert main(["train", "--data", "digits@5-9", "--out", str(other), "--epochs", "1"]) == 0
    capsys.readouterr()
    code, _, err = run(capsys, "sanity", str(trained), "--count", "2", "--random-labels", str(other), "--out", str(tmp_path / "s"))
    assert code == 2 and _one_line(err) and "was trained on 5 classes" in err and "permuted labels" in err
    assert "out of range" not in err


def test_explain_all_means_every_registered_method() -> None:
    from cnnlab.cli import build_parser, parse
    from cnnlab.explain import list_methods

    assert parse(build_parser(), ["explain", "run", "--method", "all"]).method == tuple(list_methods())
    assert len(list_methods()) >= 25


def test_attack_eps_nan_is_refused_before_any_number_is_written(capsys, trained: Path) -> None:
    code, _, err = run(capsys, "attack", str(trained), "--eps", "nan")
    assert code == 2 and _one_line(err) and "not a finite number" in err
    assert not (trained / "attack").exists()


def test_format_csv_everywhere(capsys, trained: Path, tmp_path: Path) -> None:
    code, out, _ = run(capsys, "arith", "conv", "--input", "32", "--format", "csv")
    assert code == 0 and out.splitlines()[0].startswith("op,") or "output" in out.splitlines()[0]
    code, out, _ = run(capsys, "models", "resnet1*", "--format", "csv")
    assert code == 0 and "resnet18" in out and out.splitlines()[0].startswith("name,")
    Image.new("L", (8, 8), 0).save(tmp_path / "blank.png")
    code, out, _ = run(capsys, "predict", str(trained), str(tmp_path / "blank.png"), "--top-k", "2", "--format", "csv")
    assert code == 0 and out.splitlines()[0] == "image,rank,class,probability" and len(out.splitlines()) == 3


def test_old_report_out_file_still_works_with_a_notice(capsys, trained: Path, tmp_path: Path) -> None:
    code, out, err = run(capsys, "report", str(trained), "--method", "none", "--out", str(tmp_path / "page.html"))
    assert code == 0 and (tmp_path / "page.html").stat().st_size > 10_000
    assert "notice: --out" in err and "names a folder" in err
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]


def test_a_run_set_or_a_failed_page_never_lands_in_a_run(capsys, trained: Path, tmp_path: Path) -> None:
    before = _snapshot(trained)
    code, _, err = run(capsys, "eval", str(trained), str(trained), "--out", str(trained))
    assert code == 2 and _one_line(err) and "one of the run's own files" in err
    code, _, err = run(capsys, "noisy-student", "small_cnn", "--data", "digits", "--labelled-fraction", "0.1",
                       "--out", str(trained / "rounds"))
    assert code == 2 and _one_line(err) and "is inside the run" in err
    code, _, err = run(capsys, "report", str(tmp_path / "nosuch"), "--out", str(tmp_path / "r"))
    assert code == 2 and not (tmp_path / "r").exists()
    code, _, err = run(capsys, "explain", str(trained), "--method", "saliency", "--images", str(tmp_path / "summary.png"),
                       "--out", str(trained))
    assert code == 2 and _one_line(err)
    assert _snapshot(trained) == before  # not even a summary.safetensors was written before the refusal


def test_an_old_spelling_beside_its_new_one_is_refused(capsys, trained: Path) -> None:
    code, _, err = run(capsys, "faithfulness", str(trained), "--methods", "saliency", "--method", "gradcam")
    assert code == 2 and "--methods and --method say the same thing: give only --method" in err
    code, _, err = run(capsys, "distill", "small_cnn", "--teacher", str(trained), "--student", "lenet5_tiny")
    assert code == 2 and "--student and cnnlab distill MODEL say the same thing" in err
    code, _, err = run(capsys, "augment", "digits", "--data", "digits@0-4", "--policy", "flip")
    assert code == 2 and "give only --data" in err


def test_options_that_would_be_ignored_are_refused(capsys, trained: Path, tmp_path: Path) -> None:
    code, _, err = run(capsys, "train", "--resume", str(trained), "--out", str(tmp_path / "other"))
    assert code == 2 and _one_line(err) and "leave --out out" in err and not (tmp_path / "other").exists()
    code, _, err = run(capsys, "attack", str(trained), "--method", "fgsm", "--steps", "5")
    assert code == 2 and _one_line(err) and "--steps is PGD's" in err
    code, _, err = run(capsys, "rf", "small_cnn", "--input", "1x8x8", "--layer", "nope")
    assert code == 2 and _one_line(err) and "--layer is the effective receptive field's (--erf)" in err
    code, _, err = run(capsys, "rf", "small_cnn", "--input", "1x50000x50000", "--erf")
    assert code == 2 and _one_line(err) and "needs about" in err
    code, _, err = run(capsys, "explain", str(trained), "--option", "upsample=")
    assert code == 2 and _one_line(err) and "has no value" in err
    code, _, err = run(capsys, "train", "--out", str(tmp_path / "t"), "--data-dir", str(trained / "summary.json"))
    assert code == 2 and _one_line(err) and "is a file: give the folder" in err


@pytest.mark.parametrize("override, words", [("optim.weight_decay=-0.1", "optim.weight_decay must be >= 0"),
                                             ("optim.weight_decay=.nan", "takes a finite number"),
                                             ("optim.momentum=-5", "optim.momentum must lie in [0, 1)"),
                                             ("schedule.warmup_epochs=-3", "schedule.warmup_epochs must be >= 0")])
def test_recipe_keys_refuse_what_their_domain_does_not_hold(capsys, tmp_path: Path, override: str, words: str) -> None:
    code, _, err = run(capsys, "train", "--out", str(tmp_path / "t"), override)
    assert code == 2 and _one_line(err) and words in err and not (tmp_path / "t").exists()
    code, _, err = run(capsys, "augment", "--data", "digits", "--policy", "rotate:degrees=.inf", "--out", str(tmp_path / "a"))
    assert code == 2 and "takes a finite number" in err and not (tmp_path / "a").exists()


def test_style_layers_without_maps_and_killed_sources_are_named(capsys, trained: Path, tmp_path: Path) -> None:
    from cnnlab.runs.load import load_run

    Image.effect_noise((32, 32), 60).convert("RGB").save(tmp_path / "noise.png")
    linear = next(name for name, module in load_run(trained).model.named_modules() if module.__class__.__name__ == "Linear")
    code, _, err = run(capsys, "style", str(tmp_path / "noise.png"), str(tmp_path / "noise.png"), "--features", str(trained),
                       "--style-layers", linear, "--steps", "1", "--size", "16", "--out", str(tmp_path / "s"))
    assert code == 2 and _one_line(err) and "not (N, C, H, W) maps" in err
    killed = tmp_path / "killed"
    killed.mkdir()
    (killed / "recipe.yaml").write_text((trained / "recipe.yaml").read_text())  # what a kill in the first second leaves
    for argv in (["eval", str(killed)], ["distill", "small_cnn", "--teacher", str(killed)], ["report", str(killed)]):
        code, _, err = run(capsys, *argv)
        assert code == 2 and _one_line(err) and "was stopped before training began" in err, argv


def test_links_and_other_runs_do_not_open_a_way_in(capsys, trained: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    assert main(["train", "--out", str(other), "--epochs", "1", "--seed", "1"]) == 0
    capsys.readouterr()
    (tmp_path / "link_ck").symlink_to(trained / "checkpoints")
    before, before_other = _snapshot(trained), _snapshot(other)
    for argv in (["augment", "--data", "digits", "--policy", "flip", "--n", "2", "--out", str(tmp_path / "link_ck" / "best")],
                 ["report", str(trained), "--method", "none", "--out", str(other)],  # another run's own report
                 ["train", "--out", str(trained / "checkpoints" / "x"), "--epochs", "1"],
                 ["train", "--out", str(trained / "sub"), "--epochs", "1"],
                 ["noisy-student", "small_cnn", "--data", "digits", "--labelled-fraction", "0.5",
                  "--out", str(tmp_path / "link_ck" / "ns")]):
        code, _, err = run(capsys, *argv)
        assert code == 2 and _one_line(err), (argv, err)
    assert _snapshot(trained) == before and _snapshot(other) == before_other
    code, _, err = run(capsys, "explain", str(trained), "--method", "saliency", "--count", "1",
                       "--out", str(tmp_path / "nowhere" / ".." / "ex"))
    assert code == 0 and not (tmp_path / "nowhere").exists() and (tmp_path / "ex").is_dir()


def test_a_flag_and_an_override_of_one_key_are_refused(capsys, tmp_path: Path) -> None:
    code, _, err = run(capsys, "train", "--out", str(tmp_path / "t"), "--epochs", "1", "epochs=2")
    assert code == 2 and _one_line(err) and "epochs is given twice" in err and not (tmp_path / "t").exists()


@pytest.mark.parametrize("argv, words", [
    (["arith", "conv", "--input", "32", "--output-padding", "1"], "--output-padding is a transposed convolution's"),
    (["arith", "pool", "--input", "32", "--in-channels", "4"], "--in-channels is a convolution's"),
    (["rf", "small_cnn", "--input", "1x8x8", "--samples", "5"], "--samples is the effective receptive field's"),
    (["augment", "--list", "--n", "3"], "--n is a grid's, not --list's"),
    (["visualize", "filters", "{run}", "--channels", "99"], "--channels is exemplars and dream's"),
    (["eval", "{run}", "--crop", "6"], "--crop is the --tta-table's"),
    (["explain", "{run}", "--images", "x.png", "--count", "3"], "--count is the run's test images'"),
    (["explain", "{run}", "--method", "saliency", "--layer", "nosuch"], "--layer is for the CAM methods"),
])
def test_an_option_the_command_would_ignore_is_refused(capsys, trained: Path, argv: list[str], words: str) -> None:
    code, _, err = run(capsys, *[w.format(run=trained) for w in argv])
    assert code == 2 and _one_line(err) and words in err, err


def test_class_specs_name_their_problem(capsys, tmp_path: Path) -> None:
    code, _, err = run(capsys, "train", "--data", "digits@5-5", "--out", str(tmp_path / "a"))
    assert code == 2 and "keeps one class (5): a classifier needs two or more" in err
    code, _, err = run(capsys, "train", "--data", "digits@9-5", "--out", str(tmp_path / "b"))
    assert code == 2 and "the range 9-5 runs backwards: write 5-9" in err


def test_cold_review_cases(capsys, trained: Path, tmp_path: Path) -> None:
    """Shortened flags, huge channel ranges, an override in the model's place beside an old spelling."""
    code, _, err = run(capsys, "augment", "--list", "--se", "3")
    assert code == 2 and _one_line(err) and "unrecognized arguments: --se" in err
    code, _, err = run(capsys, "visualize", "dream", str(trained), "--channels", "0-99999999999")
    assert code == 2 and _one_line(err) and "more than 65,536 channels" in err
    from cnnlab.cli import _command_parser, build_parser, parse
    from cnnlab.cli.reconcile import settle

    parser = build_parser()
    args = settle(parse(parser, ["distill", "--teacher", "t", "--student", "lenet5_tiny", "epochs=3"]),
                  _command_parser(parser, "distill"))
    assert args.model == "lenet5_tiny" and args.overrides == ["epochs=3"]
    capsys.readouterr()
    args = settle(parse(parser, ["noisy-student", "--data", "digits", "--labelled-fraction", "0.1", "epochs=3"]),
                  _command_parser(parser, "noisy-student"))
    assert args.model == "lenet5_dropout" and args.overrides == ["epochs=3"]  # the default student, not None


def test_dream_keeps_the_runs_image_size_and_checks_channels(capsys, trained: Path, monkeypatch) -> None:
    """The channel count of the layer must not stand in for the image's width (it once did)."""
    import cnnlab.explain.pictures.featureviz as featureviz
    from cnnlab.runs.load import load_run

    seen = {}

    def record(model, name, chosen, *, image_size, **_):  # noqa: ANN001, ANN003
        seen.update(image_size=image_size, chosen=chosen)
        raise KeyboardInterrupt  # stop before any optimisation

    monkeypatch.setattr(featureviz, "maximise", record)
    assert main(["visualize", "dream", str(trained), "--channels", "1-2"]) == 130
    assert seen == {"image_size": load_run(trained).info.image_size, "chosen": [1, 2]}
    capsys.readouterr()
    code, _, err = run(capsys, "visualize", "dream", str(trained), "--channels", "999", "--image", str(trained / "x.png"))
    assert code == 2 and _one_line(err) and "--channels 999 is out of range" in err
