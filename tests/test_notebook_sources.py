"""Every notebook is a jupytext pair: the MyST source (``notebooks/<name>.md``, the one to edit) and the
executed ``notebooks/<name>.ipynb`` (what the book shows) hold the same cells, in the same order, with the
same tags and figure metadata. Only execution records differ: outputs, papermill's timings and the cell of
parameters papermill injects."""

from __future__ import annotations

from pathlib import Path

import jupytext
import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
EXECUTION_METADATA = {"papermill", "execution", "ExecuteTime", "jupyter"}
FIX = "edit the .md source, then `make sync-notebooks` and re-run the notebook"


def cells(notebook) -> list[tuple[str, str, dict]]:
    kept = []
    for cell in notebook.cells:
        metadata = {k: v for k, v in cell.metadata.items() if k not in EXECUTION_METADATA}
        if "injected-parameters" in metadata.get("tags", []):
            continue
        if not metadata.get("tags"):
            metadata.pop("tags", None)
        kept.append((cell.cell_type, cell.source, metadata))
    return kept


def test_every_notebook_has_its_source_and_every_source_its_notebook():
    executed = {p.stem for p in NOTEBOOKS.glob("*.ipynb")}
    sources = {p.stem for p in NOTEBOOKS.glob("*.md")}
    assert executed and executed == sources, (
        f"without a source: {sorted(executed - sources)}; without a notebook: {sorted(sources - executed)}")


@pytest.mark.parametrize("name", sorted(p.stem for p in NOTEBOOKS.glob("*.md")))
def test_source_and_executed_notebook_hold_the_same_cells(name):
    source = jupytext.read(NOTEBOOKS / f"{name}.md")
    executed = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    mine, theirs = cells(source), cells(executed)
    assert len(mine) == len(theirs), f"{name}: {len(mine)} cells in the source, {len(theirs)} executed; {FIX}"
    for index, (a, b) in enumerate(zip(mine, theirs)):
        assert a == b, f"{name}, cell {index}: the source and the executed notebook differ; {FIX}"


def test_the_folder_pairs_every_notebook_with_its_myst_source():
    config = jupytext.config.load_jupytext_configuration_file(str(NOTEBOOKS / "jupytext.toml"))
    assert config.formats in ("ipynb,md:myst", ["ipynb,md:myst"])


def test_the_sync_check_sees_an_edited_cell(tmp_path):
    name = sorted(NOTEBOOKS.glob("*.md"))[0].stem
    source = jupytext.read(NOTEBOOKS / f"{name}.md")
    edited = next(cell for cell in source.cells if cell.cell_type == "code")
    edited.source += "\nprint('edited')"
    executed = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    assert cells(source) != cells(executed)


def test_sources_carry_no_execution_records():
    for path in sorted(NOTEBOOKS.glob("*.md")):
        text = path.read_text()
        assert "papermill" not in text and "injected-parameters" not in text, path.name
        tagged = [cell for cell in jupytext.read(path).cells if "parameters" in cell.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{path.name}: needs exactly one cell tagged 'parameters'"
