"""Every example in the README runs: the Python blocks execute, the CLI lines exit 0."""

import re
import shlex
from pathlib import Path

import pytest

from cnnlab.cli import main

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)
CLI_LINES = [
    line.split("#")[0].strip()
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S)
    for line in block.splitlines()
    if line.startswith("cnnlab ")
]


@pytest.mark.parametrize("code", PYTHON_BLOCKS)
def test_python_example_runs(code: str) -> None:
    exec(compile(code, "README.md", "exec"), {})


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """One folder for all CLI lines, in README order: `eval runs/demo` reads what `train` wrote."""
    return tmp_path_factory.mktemp("readme")


@pytest.mark.parametrize("line", CLI_LINES)
def test_cli_example_runs(line: str, workdir, monkeypatch) -> None:
    monkeypatch.chdir(workdir)  # `cnnlab train` writes runs/ here, not into the checkout
    argv = shlex.split(line)[1:]
    if "--data-dir" in argv:
        pytest.skip("trains on 60,000 real images: minutes on a CPU, run by hand")
    if argv[0] == "train" and "--resume" not in argv:
        argv += ["--epochs", "2"]  # the README's 30 epochs are what `make run` shows; 2 prove it runs
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    assert code == 0, line


def test_readme_opens_with_the_two_commands() -> None:
    first_block = re.search(r"```bash\n(.*?)```", README, flags=re.S).group(1)
    commands = [line.split("#")[0].strip() for line in first_block.splitlines()]
    assert commands == ["make run", "make test"]
