"""The package map in featlib/__init__.py is the real one: every module is listed, and imports flow one way."""

import ast
from pathlib import Path

import featlib

PKG = Path(featlib.__file__).parent


def _imports(path: Path) -> set[str]:
    """featlib submodules a file imports, at the top or inside functions."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("featlib"):
            parts = node.module.split(".")
            out |= {parts[1]} if len(parts) > 1 else {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[1] for a in node.names if a.name.startswith("featlib.")}
    return out


def test_every_module_is_on_the_map():
    on_disk = {p.stem for p in PKG.glob("*.py") if p.stem != "__init__"} | {"data"}
    assert on_disk == set(featlib._SUBMODULES)
    for name in featlib._SUBMODULES:
        assert f"``featlib.{name}``" in featlib.__doc__, name


def test_imports_flow_one_way():
    rank = {m: i for i, m in enumerate(featlib._SUBMODULES)}
    upward = []
    for path in [*PKG.glob("*.py"), *(PKG / "data").glob("*.py")]:
        me = "data" if path.parent.name == "data" else path.stem
        if me == "__init__":
            continue
        upward += [f"{path.name} imports {m}" for m in _imports(path) - {me} if rank.get(m, -1) > rank[me]]
    assert upward == []
