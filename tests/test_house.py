"""The house: imports flow one way, bottom up (DESIGN.md); a lower floor never imports a higher one."""

import ast
import subprocess
import sys
from pathlib import Path

import cnnlab

PACKAGE = Path(cnnlab.__file__).parent
ORDER = {name: level for level, name in enumerate(cnnlab.FLOORS)}


def _floor(module: str) -> str | None:
    """Return the floor of a dotted cnnlab module name (cnnlab.x.y -> x), None for cnnlab itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "cnnlab" else None


def _imports(path: Path) -> list[tuple[str, int]]:
    """Return (imported cnnlab module, line) for every import in a file, relative ones resolved."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: -node.level] if path.name != "__init__.py" else module.split(".")[: len(module.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found += [(f"{base}.{alias.name}" if base == "cnnlab" else base, node.lineno) for alias in node.names]
    return [(name, line) for name, line in found if name.startswith("cnnlab")]


def test_every_file_sits_on_a_known_floor() -> None:
    floors = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in PACKAGE.rglob("*.py")}
    assert floors - {"__init__", "__main__"} <= set(ORDER), floors - set(ORDER)


def test_no_floor_imports_a_higher_one() -> None:
    broken = []
    for path in sorted(PACKAGE.rglob("*.py")):
        here = _floor(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
        if here is None or here == "__main__":
            continue
        for name, line in _imports(path):
            there = _floor(name)
            if there in ORDER and ORDER[there] > ORDER[here]:
                broken.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({here}) imports {name} ({there})")
    assert not broken, "\n".join(broken)


def test_the_checker_catches_an_upward_import(tmp_path) -> None:
    sample = PACKAGE / "nn" / "_house_probe.py"
    sample.write_text("from cnnlab.train.engine import Trainer\n")
    try:
        assert _floor(_imports(sample)[0][0]) == "train"
    finally:
        sample.unlink()


def test_import_cnnlab_is_cheap_and_the_zoo_is_lazy() -> None:
    code = ("import sys, cnnlab; assert 'torch' not in sys.modules, 'torch imported';"
            "m = cnnlab.create_model('small_cnn', num_classes=3); print(type(m).__name__, len(cnnlab.list_models('resnet*')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout.split() == ["SmallCNN", str(len(__import__("cnnlab.models", fromlist=["x"]).list_models("resnet*")))]
