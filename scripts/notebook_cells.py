"""Cells and notebooks as plain JSON, for the scripts that write the chapters' notebooks (``make_*.py``).

Generated notebooks are unexecuted; ``python -m dvae_core.reproduce`` executes them.
"""

import json
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def md(text, **meta):
    return {"cell_type": "markdown", "metadata": meta, "source": text.strip("\n")}


def code(text, tags=(), figure=None, caption=None):
    """A code cell; ``caption`` (and ``figure``, its label) make its plot a numbered MyST figure."""
    meta = {"tags": list(tags)}
    if caption:
        meta["mystnb"] = {"figure": {"caption": caption, **({"name": figure} if figure else {})}}
    return {"cell_type": "code", "metadata": meta, "execution_count": None, "outputs": [], "source": text.strip("\n")}


def parameters(seed_comment: str = "offsets every training seed"):
    """The one cell papermill injects parameters after (the three every notebook takes)."""
    return code(f'''
profile = "preview"  # smoke | preview | paper
device = "auto"     # auto | cpu | cuda
seed = 0            # {seed_comment}
''', tags=["parameters"])


def notebook(cells):
    for i, cell in enumerate(cells):
        cell["id"] = f"c{i:02d}"
    return {"cells": cells, "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                                         "name": "python3"},
                                          "language_info": {"name": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


def write(name: str, cells, directory: Path = NOTEBOOKS) -> Path:
    path = directory / f"{name}.ipynb"
    path.write_text(json.dumps(notebook(cells), indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {path}")
    return path
