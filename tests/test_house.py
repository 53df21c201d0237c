"""The house: imports flow one way, bottom up (DESIGN.md); a lower floor never imports a higher one, nor a sibling."""

import ast
import subprocess
import sys
from pathlib import Path

import cnnlab

PACKAGE = Path(cnnlab.__file__).parent
ORDER = {name: level for level, names in enumerate(cnnlab.FLOORS) for name in names}


def _floor(module: str) -> str | None:
    """Return the floor of a dotted cnnlab module name (cnnlab.x.y -> x), None for cnnlab itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "cnnlab" else None


def _imports(path: Path, root: Path = PACKAGE) -> list[tuple[str, int]]:
    """Return (imported cnnlab module, line) for every import in a file of the package at `root`, relative ones resolved."""
    module = ".".join(path.relative_to(root.parent).with_suffix("").parts)
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


def upward_imports(root: Path = PACKAGE) -> list[str]:
    """Return every import in the package at `root` that reaches a higher floor than its file's."""
    broken = []
    for path in sorted(root.rglob("*.py")):
        here = _floor(".".join(path.relative_to(root.parent).with_suffix("").parts))
        if here is None or here == "__main__":
            continue
        for name, line in _imports(path, root):
            there = _floor(name)
            if there in ORDER and (ORDER[there] > ORDER[here] or (ORDER[there] == ORDER[here] and there != here)):
                broken.append(f"{path.relative_to(root.parent)}:{line} ({here}) imports {name} ({there})")
    return broken


def wing_imports(wing: str, rooms: tuple[tuple[str, ...], ...], root: Path = PACKAGE) -> list[str]:
    """Return every import inside the wing `wing` that reaches a higher room (or the wing's own facade) than its file's."""
    level = {room: index for index, names in enumerate(rooms) for room in names}
    prefix, broken = f"cnnlab.{wing}.", []
    for path in sorted((root / wing).rglob("*.py")):
        parts = path.relative_to(root / wing).with_suffix("").parts
        if parts == ("__init__",):
            continue  # the facade stands above every room
        here = parts[0]
        for name, line in _imports(path, root):
            if name != f"cnnlab.{wing}" and not name.startswith(prefix):
                continue
            there = name.removeprefix(prefix).split(".")[0] if name.startswith(prefix) else None
            if there is None or level.get(there, len(rooms)) > level[here] or (level[there] == level[here] and there != here):
                broken.append(f"{path.relative_to(root.parent)}:{line} ({here}) imports {name} ({there or 'the facade'})")
    return broken


def _module_level_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Return module -> the cnnlab modules it imports when it is imported (top-level statements, TYPE_CHECKING left out)."""
    modules = {".".join(p.relative_to(root.parent).with_suffix("").parts).removesuffix(".__init__"): p
               for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        body = ast.parse(path.read_text()).body
        statements = []
        for node in body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue  # for the type checker only: never runs
            statements += [n for n in ast.walk(node) if isinstance(n, ast.Import | ast.ImportFrom)
                           and not any(isinstance(a, ast.FunctionDef | ast.AsyncFunctionDef) for a in _ancestors(node, n))]
        targets = set()
        for node in statements:
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    parts = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                    parts = parts[: len(parts) - node.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            targets |= {n for n in names if n in modules and n != name}
        graph[name] = targets
    return graph


def _ancestors(root: ast.AST, target: ast.AST) -> list[ast.AST]:
    """Return the nodes between `root` and `target` (a function between them makes an import lazy)."""
    trail: list[ast.AST] = []

    def find(node: ast.AST) -> bool:
        if node is target:
            return True
        for child in ast.iter_child_nodes(node):
            trail.append(node)
            if find(child):
                return True
            trail.pop()
        return False

    find(root)
    return trail


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Return the import cycles of a module graph, each as the modules around it."""
    cycles, state, stack = [], {}, []

    def visit(module: str) -> None:
        state[module] = "open"
        stack.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module)
    return cycles


def test_every_file_sits_on_a_known_floor() -> None:
    floors = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in PACKAGE.rglob("*.py")}
    assert floors - {"__init__", "__main__"} <= set(ORDER), floors - set(ORDER)


def test_no_floor_imports_a_higher_one() -> None:
    broken = upward_imports()
    assert not broken, "\n".join(broken)


def test_every_explain_file_sits_in_a_room_and_no_room_imports_a_higher_one() -> None:
    from cnnlab.explain import ROOMS

    rooms = {p.relative_to(PACKAGE / "explain").parts[0].removesuffix(".py") for p in (PACKAGE / "explain").rglob("*.py")}
    assert rooms - {"__init__"} <= {r for names in ROOMS for r in names}, rooms
    broken = wing_imports("explain", ROOMS)
    assert not broken, "\n".join(broken)


def test_the_room_checker_catches_the_kit_importing_a_method(tmp_path) -> None:
    import shutil

    from cnnlab.explain import ROOMS

    copy = tmp_path / "cnnlab"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "explain" / "kit" / "_probe.py").write_text("def f():\n    from cnnlab.explain.methods import gradient\n")
    (copy / "explain" / "checks" / "_probe.py").write_text("from cnnlab.explain.pictures import render\n")
    assert wing_imports("explain", ROOMS, copy) == [
        "cnnlab/explain/checks/_probe.py:1 (checks) imports cnnlab.explain.pictures (pictures)",
        "cnnlab/explain/kit/_probe.py:2 (kit) imports cnnlab.explain.methods (methods)"]


def test_the_checker_catches_an_upward_import(tmp_path) -> None:
    """The probe goes into a copy of the package: the installed one is never written (parallel runs, read-only installs)."""
    import shutil

    copy = tmp_path / "cnnlab"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert upward_imports(copy) == []
    (copy / "nn" / "_house_probe.py").write_text("from cnnlab.train.engine import Trainer\n")
    assert upward_imports(copy) == ["cnnlab/nn/_house_probe.py:1 (nn) imports cnnlab.train.engine (train)"]
    (copy / "nn" / "_house_probe.py").unlink()
    (copy / "explain" / "_house_probe.py").write_text("from cnnlab.train.engine import Trainer\n")
    assert upward_imports(copy) == ["cnnlab/explain/_house_probe.py:1 (explain) imports cnnlab.train.engine (train)"]
    assert not (PACKAGE / "nn" / "_house_probe.py").exists()


def test_no_module_level_import_cycle() -> None:
    cycles = import_cycles(_module_level_graph())
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_import_cnnlab_is_cheap_and_the_zoo_is_lazy() -> None:
    code = ("import sys, cnnlab; assert 'torch' not in sys.modules, 'torch imported';"
            "m = cnnlab.create_model('small_cnn', num_classes=3); print(type(m).__name__, len(cnnlab.list_models('resnet*')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout.split() == ["SmallCNN", str(len(__import__("cnnlab.models", fromlist=["x"]).list_models("resnet*")))]
