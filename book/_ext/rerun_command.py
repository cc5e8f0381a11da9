"""Sphinx extension: every notebook page of the book opens with the one command that re-runs it.

The command names the profile and the seed offset the committed page was executed with (from its
``results/preview/<name>.json``), so running it re-creates the page's numbers; without ``--seed`` a
re-run trains the notebook's default seeds instead.
"""

from __future__ import annotations

import json
from pathlib import Path

from docutils import nodes

PROFILE = "preview"


def rerun_command(srcdir: Path, name: str) -> str:
    results = srcdir / "results" / PROFILE / f"{name}.json"
    offset = None
    if results.exists():
        offset = json.loads(results.read_text()).get("seed_offset")
    seed = f" --seed {offset}" if offset else ""
    return f".venv/bin/python -m dvae_core.reproduce --profile {PROFILE} --only {name}{seed}"


def add_rerun_line(app, doctree) -> None:
    docname = app.env.docname
    if not docname.startswith("notebooks/"):
        return
    section = next(iter(doctree.findall(nodes.section)), None)
    if section is None:
        return
    line = nodes.paragraph(classes=["rerun-command"])
    line += nodes.strong(text="Re-run this page: ")
    line += nodes.literal(text=rerun_command(Path(app.srcdir), docname.split("/", 1)[1]))
    line += nodes.Text(" (after make setup; the run store reuses every model already trained).")
    section.insert(1, line)  # right below the page title


def setup(app):
    app.connect("doctree-read", add_rerun_line)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
