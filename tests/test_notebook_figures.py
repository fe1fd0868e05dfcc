"""Notebook figures stay visible: importing featlib never changes matplotlib's backend.

    pytest tests/test_notebook_figures.py

Each case starts a fresh Jupyter kernel the way JupyterLab does (MPLBACKEND unset, so ipykernel picks the inline
backend), runs every import statement of a notebook (read from its .ipynb, so it follows the notebook's edits), then
draws with pyplot and expects an ``image/png`` display. The nbmake runs cannot see this: the root conftest sets
MPLBACKEND=Agg for them, which the kernel inherits.
"""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parents[1]
INLINE = "module://matplotlib_inline.backend_inline"
NOTEBOOKS = ["02_loss_overfit.ipynb", "04_training.ipynb"]


def import_lines(notebook: Path) -> str:
    """Every top-level import statement of the notebook's code cells, in order (no other code: the cells' work is
    nbmake's to run)."""
    cells = json.loads(notebook.read_text())["cells"]
    lines = []
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        lines += [ast.get_source_segment(source, node) for node in ast.parse(source).body
                  if isinstance(node, (ast.Import, ast.ImportFrom))]
    return "\n".join(lines)


def run_in_fresh_kernel(cells: list[str]) -> list[list[dict]]:
    """Execute ``cells`` in a new python3 kernel whose environment has no MPLBACKEND; the outputs of each cell."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=False,
                                     resources={"metadata": {"path": str(ROOT)}})
    client.execute(env=env)
    return [cell.outputs for cell in nb.cells]


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_imports_keep_inline_backend(name):
    imports = import_lines(ROOT / "notebooks" / name)
    if "featlib" not in imports:
        raise AssertionError(f"{name}: no featlib import found in its code cells")
    outputs = run_in_fresh_kernel([
        imports,
        "import featlib.train  # noqa\nimport matplotlib\nprint(matplotlib.get_backend())",
        "import matplotlib.pyplot as plt\nfig, ax = plt.subplots(figsize=(2, 2))\nax.plot([0, 1], [0, 1])\nplt.show()",
        "plt.figure(figsize=(2, 2)); plt.plot([1, 0]);",   # no show(): the inline backend displays it at cell end
    ])
    backend = "".join(o.get("text", "") for o in outputs[1]).strip()
    assert backend == INLINE, f"after {name}'s imports the backend is {backend!r}, not the kernel's inline one"
    for i in (2, 3):
        kinds = [k for o in outputs[i] for k in o.get("data", {})]
        assert "image/png" in kinds, f"after {name}'s imports a pyplot figure showed nothing (outputs: {kinds})"
