"""Write copies of the committed notebooks set to the ``smoke`` profile, for nbval.

The committed notebooks carry ``preview`` outputs. nbval re-executes a notebook as it is, so each
copy gets its parameters replaced by ``profile = "smoke"`` (in papermill's injected-parameters
cell, or a new cell after the ``parameters`` cell) while every committed output is kept: nbval
then checks, in lax mode, that cells tagged ``nbval-check-output`` (the profile-independent ones)
still print what the book shows.

    python scripts/smoke_notebooks.py OUTDIR
"""

import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
SMOKE = 'profile = "smoke"\ndevice = "cpu"\nseed = 0\n'


def smoke_copy(source: Path, destination: Path) -> None:
    nb = nbformat.read(source, as_version=4)
    tags = [cell.metadata.get("tags", []) for cell in nb.cells]
    injected = [i for i, t in enumerate(tags) if "injected-parameters" in t]
    if injected:
        nb.cells[injected[0]].source = SMOKE
    else:
        params = [i for i, t in enumerate(tags) if "parameters" in t]
        if len(params) != 1:
            raise SystemExit(f"{source.name}: needs exactly one cell tagged 'parameters', found {len(params)}")
        cell = nbformat.v4.new_code_cell(SMOKE)
        cell.metadata["tags"] = ["injected-parameters"]
        nb.cells.insert(params[0] + 1, cell)
    nbformat.write(nb, destination)


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    if not notebooks:
        raise SystemExit("no notebooks under notebooks/")
    for nb in notebooks:
        smoke_copy(nb, out / nb.name)
    print(f"smoke copies of {len(notebooks)} notebook(s) in {out}")


if __name__ == "__main__":
    main()
