"""Re-run the book headlessly: ``python -m dvae_core.reproduce --profile preview``.

Executes every notebook (or those matching ``--only``) with papermill, passing ``profile``,
``device`` and ``seed`` to its ``parameters`` cell. Each notebook writes its claims to
``results/<profile>/<notebook>.json``; this command aggregates them into
``results/<profile>/scorecard.json`` and the book's scorecard page, prints a summary table and
exits non-zero if any notebook failed. The kernels talk to papermill over loopback TCP (127.0.0.1):
without it the command stops before the first notebook, with the fix.

Executed notebooks go back into ``notebooks/`` for the ``preview`` profile (they are the book's
committed outputs) and to ``_build/executed/<profile>/`` for the others, so a smoke or paper run
never overwrites what the book shows.
"""

from __future__ import annotations

import argparse
import fcntl
import fnmatch
import json
import os
import re
import socket
import sys
import time
from pathlib import Path

from dvae_core.profiles import PROFILES, check_profile
from dvae_core.infra import GENERATED_DIR, REPO_ROOT, RESULTS_DIR, atomic_write_text, resolve_device
from dvae_core import verdicts
from dvae_core.rules import VERDICTS
from dvae_core.papers import PAPERS, paper_of_notebook

NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
SCORECARD_PAGE = REPO_ROOT / "book" / "scorecard.md"
# Under GENERATED_DIR: fragments the hand-written pages include (book/intro.md, book/reproduce.md), and
# the PNGs of the notebooks' named figures shown as the landing page's gallery. Never edit by hand.
FIGURES_DIR = GENERATED_DIR / "figures"
TOC_FILE = REPO_ROOT / "_toc.yml"
BOOK_PROFILE = "preview"
# Lines that delimit the claims table in the scorecard page, so the landing page can include it.
CLAIMS_START, CLAIMS_END = "% claims:start", "% claims:end"


def is_check(claim: dict) -> bool:
    """A check of a metric on constructed codes (counted apart from the reproductions)."""
    return claim.get("kind", "reproduction") == "check"


def tally(claims: list[dict]) -> str:
    """"3 reproduced, 1 not reproduced, 2 inconclusive; 4 of 4 checks passed" (the parts that apply)."""
    reproductions = [c for c in claims if not is_check(c)]
    checks = [c for c in claims if is_check(c)]
    parts = []
    if reproductions:
        parts.append(", ".join(f"{sum(c['verdict'] == v for c in reproductions)} {v}" for v in VERDICTS))
    if checks:
        parts.append(f"{sum(c['verdict'] == 'passed' for c in checks)} of {len(checks)} checks passed")
    return "; ".join(parts) or "no claim"


def find_notebooks(only: str | None = None) -> list[Path]:
    """The notebooks to run, in book order (then any outside the TOC, by name): a notebook that reuses
    another's runs (the explorer, the geometry) comes after it, so each run is trained, and timed, in
    the notebook that owns it."""
    in_book = book_notebooks(TOC_FILE)
    notebooks = in_book + sorted(set(NOTEBOOKS_DIR.glob("*.ipynb")) - set(in_book))
    if only:
        notebooks = [nb for nb in notebooks if fnmatch.fnmatch(nb.stem, only) or fnmatch.fnmatch(nb.name, only)]
        if not notebooks:
            known = ", ".join(nb.stem for nb in sorted(NOTEBOOKS_DIR.glob("*.ipynb")))
            raise ValueError(f"no notebook matches --only {only!r}; notebooks: {known}")
    return notebooks


def output_path(notebook: Path, profile: str, output_dir: Path | None) -> Path:
    if output_dir is not None:
        return output_dir / notebook.name
    if profile == BOOK_PROFILE:
        return notebook
    return REPO_ROOT / "_build" / "executed" / profile / notebook.name


def execute(notebook: Path, output: Path, profile: str, device: str, seed: int) -> None:
    import papermill

    output.parent.mkdir(parents=True, exist_ok=True)
    # papermill writes as it goes; only a notebook that ran to the end replaces the output
    tmp = REPO_ROOT / "_build" / "partial" / profile / notebook.name
    tmp.parent.mkdir(parents=True, exist_ok=True)
    try:
        papermill.execute_notebook(str(notebook), str(tmp), parameters={"profile": profile, "device": device,
                                                                         "seed": seed},
                                   cwd=str(notebook.parent), kernel_name="python3", progress_bar=False)
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)


class NoLoopbackError(OSError):
    """This machine cannot open TCP connections to itself, which every notebook's kernel needs."""


def check_loopback() -> None:
    """Open and connect a TCP socket on 127.0.0.1. Papermill talks to each notebook's Jupyter kernel over
    loopback TCP ports; without them every notebook waits 60 s and fails with "Kernel didn't respond", so
    the batch is refused up front with the fix instead."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
            server.bind(("127.0.0.1", 0))
            server.listen(1)
            with socket.create_connection(server.getsockname()[:2], timeout=5):
                pass
    except OSError as err:
        raise NoLoopbackError(f"reproduce runs notebooks through a Jupyter kernel, which needs loopback TCP "
                              f"(127.0.0.1); {err}: bring the loopback interface up (e.g. `ip link set lo up`) and "
                              f"run again") from None


def read_json(path: Path) -> dict:
    """A results file, or one line naming it and the fix if it is not readable JSON."""
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is damaged ({err}): restore it (git checkout) or delete it, and run again") from None


def check_results(profile: str) -> None:
    """Every results file of ``profile`` reads, so that a damaged one stops the batch before any notebook
    runs, not after all of them."""
    for path in sorted((RESULTS_DIR / profile).glob("*.json")):
        read_json(path)


def mark_stale(profile: str, notebook: str, reason: str) -> None:
    """Record in ``notebook``'s results file that its claims are left from an earlier run (the notebook
    failed since); the next successful run writes the file afresh, without the mark."""
    path = RESULTS_DIR / profile / f"{notebook}.json"
    if path.exists():
        atomic_write_text(path, json.dumps({**read_json(path), "stale": reason}, indent=1) + "\n")


def load_results(profile: str) -> list[dict]:
    """Every notebook's claims under ``profile``, in book order: papers as the registry lists them, each
    paper's notebooks as the table of contents does (results of notebooks outside it last, by name). The
    claims of a notebook whose last run failed carry its results file's ``stale`` reason."""
    order = {nb.stem: i for i, nb in enumerate(find_notebooks())}
    paths = [p for p in (RESULTS_DIR / profile).glob("*.json") if p.name not in ("scorecard.json", "timings.json")]
    claims = []
    for path in sorted(paths, key=lambda p: (paper_rank(p.stem), order.get(p.stem, len(order)), p.stem)):
        payload = read_json(path)
        if "notebook" not in payload:  # a script's record beside the notebooks' (scripts/thread_check.py's)
            continue
        stale = {"stale": payload["stale"]} if "stale" in payload else {}
        claims.extend({**c, **stale} for c in payload["claims"])
    return claims


def paper_rank(notebook: str) -> int:
    """The registry position of the paper ``notebook`` belongs to (after every paper for none)."""
    owner = paper_of_notebook(notebook)
    return PAPERS.index(owner) if owner is not None else len(PAPERS)


def notebook_title(name: str) -> str:
    """The first ``# heading`` of ``notebooks/<name>.ipynb`` (the link text readers see), else ``name``."""
    path = NOTEBOOKS_DIR / f"{name}.ipynb"
    if not path.exists():
        return name
    for cell in json.loads(path.read_text())["cells"]:
        match = re.match(r"#\s+(.+)", _source(cell)) if cell["cell_type"] == "markdown" else None
        if match:
            return match.group(1).strip()
    return name


def scale_banner(claims: list[dict], profile: str, results_dir: Path = RESULTS_DIR) -> str:
    """The admonition that says at what scale the numbers were computed: the profile, the range of training
    images per run against the papers', and whether any run of the ``paper`` profile is on record."""
    shares = sorted({c["budget"]["paper_images_per_run"] / c["budget"]["images_per_run"]
                     for c in claims if not is_check(c) and c.get("budget") and c["budget"].get("images_per_run")})
    paper_claims = [c for path in sorted((results_dir / "paper").glob("*.json")) if path.name != "scorecard.json"
                    for c in read_json(path).get("claims", [])]
    lines = [":::{important}", f"Every number on this page comes from the **`{profile}`** profile."]
    if profile != "paper" and shares:
        low, high = shares[0], shares[-1]
        span = f"1/{low:,.0f}" if low == high else f"between 1/{high:,.0f} and 1/{low:,.0f}"
        lines.append(f"Its models saw {span} of the training images the papers' models saw, on 2 CPU cores: a "
                     f"verdict says what holds at that scale, and a number beside the paper's is comparable in "
                     f"direction, not in value.")
    if paper_claims:
        lines.append(f"The `paper` profile (the papers' own settings, for a GPU) has results for "
                     f"{len(paper_claims)} claims in `results/paper/`.")
    else:
        lines.append("No run of the `paper` profile (the papers' own settings, for a GPU) is on record: "
                     "`results/paper/` holds no claims.")
    checked = gpu_checks(results_dir)
    if checked:
        where = sorted({c.get("gpu") or c.get("device", "a GPU") for c in checked.values()})
        lines.append(f"The GPU device check (`scripts/device_check.py`, on {', '.join(where)}) decided "
                     f"{len(checked)} of these claims at larger scale: each such card says how, beside ours.")
    else:
        lines.append("No GPU device check is on record (`results/gpu/` holds none).")
    return "\n".join(lines + [":::"])


GPU_CHECK_DIR = "gpu"  # results/gpu/: the JSON files the GPU device check wrote (scripts/device_check.py --out)


def gpu_checks(results_dir: Path = RESULTS_DIR) -> dict[str, dict]:
    """The claims the GPU device check decided, by claim id: each claim's record with its check's sizes and
    device (``results/gpu/<check>.json``); empty where no check is on record."""
    found = {}
    for path in sorted((results_dir / GPU_CHECK_DIR).glob("*.json")):
        record = read_json(path)
        for claim in record.get("claims") or []:
            found[claim["id"]] = {**claim, **{k: record[k] for k in ("images_per_run", "replicates", "gpu", "device")
                                              if k in record}}
    return found


def paper_counts(claims: list[dict]) -> list[str]:
    """Per paper, in registry order, a list item linking its chapter: its reproductions by verdict and its
    checks (a list, not a table: it stays readable on a phone)."""
    lines = []
    for entry in PAPERS:
        mine = [c for c in claims if entry.owns(c["notebook"])]
        if mine:
            lines.append(f"- [{entry.title}]({entry.chapter.split('/')[-1]}.md): {tally(mine)}")
    return lines


def scorecard_markdown(claims: list[dict], timings: dict[str, float], profile: str,
                       results_dir: Path = RESULTS_DIR) -> str:
    """The scorecard page: the scale banner and the counts (between ``CLAIMS_START`` and ``CLAIMS_END``,
    which the landing page includes), then every claim as a card of :mod:`dvae_core.verdicts`, grouped by
    paper and notebook in book order, the checks of metrics on constructed codes apart, then wall times."""
    reproductions = [c for c in claims if not is_check(c)]
    checks = [c for c in claims if is_check(c)]
    gpu = gpu_checks(results_dir)
    counts = {v: sum(c["verdict"] == v for c in reproductions) for v in VERDICTS}
    passed = sum(c["verdict"] == "passed" for c in checks)
    lines = [
        "# Scorecard", "",
        "Every claim the book checks, paper by paper in the book's order: the verdict computed by code, the",
        "claim, our number and the paper's, why an inconclusive verdict is inconclusive, and the rule. Generated",
        f"by `python -m dvae_core.reproduce --profile {profile}` from `results/{profile}/`; do not edit by hand.",
        "The rules are the same for every claim: see {ref}`How verdicts work <how-verdicts>`.", "",
        CLAIMS_START,
        scale_banner(claims, profile, results_dir), "",
        f"**{counts['reproduced']} reproduced, {counts['not reproduced']} not reproduced, "
        f"{counts['inconclusive']} inconclusive** out of {len(reproductions)} reproduction claims"
        + (f"; **{passed} of {len(checks)} checks** of a metric on constructed codes passed (counted apart: "
           f"they re-run no experiment)." if checks else "."), "",
        *(paper_counts(claims) if claims else []),
        CLAIMS_END, "",
    ]
    if not claims:
        lines.append("No claim measured yet.")
    for entry in [*PAPERS, None]:
        mine = [c for c in claims if (entry.owns(c["notebook"]) if entry else paper_of_notebook(c["notebook"]) is None)]
        if not mine:
            continue
        lines += [f"## {entry.title if entry else 'Other notebooks'}", "", tally(mine) + ".", ""]
        for notebook in dict.fromkeys(c["notebook"] for c in mine):  # book order, each once
            group = [c for c in mine if c["notebook"] == notebook]
            checks_only = all(is_check(c) for c in group)
            lines += [f"### [{notebook_title(notebook)}](../notebooks/{notebook}.ipynb)", ""]
            if checks_only:
                lines += ["Checks of a metric on constructed codes: counted apart from the reproductions.", ""]
            lines.append(verdicts.to_myst([verdicts.view(c, gpu.get(c["id"])) for c in group]))
    if timings:
        lines += ["## Wall time per notebook", "", "| notebook | minutes |", "|---|---:|"]
        lines += [f"| {name} | {seconds / 60:.1f} |" for name, seconds in sorted(timings.items())]
    return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------------- generated book fragments


def timings_markdown(results_dir: Path = RESULTS_DIR) -> str:
    """Measured minutes per notebook (rows) and profile (columns), from ``results/*/timings.json``."""
    measured = {}
    for profile in PROFILES:
        path = results_dir / profile / "timings.json"
        measured[profile] = json.loads(path.read_text()) if path.exists() else {}
    in_book = [nb.stem for nb in book_notebooks()]
    names = in_book + sorted(set().union(*measured.values()) - set(in_book))
    lines = ["% Generated by dvae_core/reproduce.py from results/*/timings.json; do not edit by hand.",
             "| notebook | " + " | ".join(f"`{p}`" for p in PROFILES) + " |",
             "|---|" + "---:|" * len(PROFILES)]
    for name in names:
        cells = [f"{measured[p][name] / 60:.1f} min" if name in measured[p] else "not measured" for p in PROFILES]
        label = f"[{name}](../notebooks/{name}.ipynb)" if name in in_book else f"`{name}` (not in the book yet)"
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    totals = []
    for p in PROFILES:
        times = [measured[p][name] for name in in_book if name in measured[p]]
        if not times:
            totals.append("not measured")
        elif len(times) < len(in_book):
            totals.append(f"{sum(times) / 60:.1f} min ({len(times)} of {len(in_book)} notebooks)")
        else:
            totals.append(f"**{sum(times) / 60:.1f} min**")
    lines.append("| **the whole book** | " + " | ".join(totals) + " |")
    return "\n".join(lines) + "\n"


def book_notebooks(toc_file: Path = TOC_FILE) -> list[Path]:
    """The notebooks the book shows (``notebooks/*`` entries of ``_toc.yml``), in TOC order."""
    import yaml

    found: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("file"), str):
                found.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(yaml.safe_load(toc_file.read_text()) if toc_file.exists() else {})
    paths = [REPO_ROOT / f"{f}.ipynb" for f in found if f.startswith("notebooks/")]
    return [p for p in paths if p.exists()]


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _stack_pngs(blobs: list[bytes]) -> bytes:
    """The PNG outputs of one cell, one under the other on white, as one PNG."""
    from io import BytesIO

    from PIL import Image

    images = [Image.open(BytesIO(b)).convert("RGBA") for b in blobs]
    canvas = Image.new("RGBA", (max(i.width for i in images), sum(i.height for i in images)), "white")
    top = 0
    for image in images:
        canvas.alpha_composite(image, ((canvas.width - image.width) // 2, top))
        top += image.height
    out = BytesIO()
    canvas.convert("RGB").save(out, format="PNG", optimize=True)
    return out.getvalue()


def export_figures(notebooks: list[Path], out_dir: Path = FIGURES_DIR) -> list[dict]:
    """Write the PNG of every named figure (cell metadata ``mystnb.figure.name``) of the executed
    notebooks to ``out_dir/<name>.png``; returns one record per figure, in book order."""
    import base64

    figures = []
    for path in notebooks:
        nb = json.loads(path.read_text())
        title = notebook_title(path.stem) if path.parent == NOTEBOOKS_DIR else path.stem
        for cell in nb["cells"]:
            figure = cell.get("metadata", {}).get("mystnb", {}).get("figure", {})
            pngs = [base64.b64decode(o["data"]["image/png"]) for o in cell.get("outputs", [])
                    if "image/png" in o.get("data", {})]
            if not figure.get("name") or not pngs:
                continue
            target = out_dir / f"{figure['name']}.png"
            png = _stack_pngs(pngs)
            if not target.exists() or target.read_bytes() != png:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(png)
            # a cell with several images gives several figures under one name, which Sphinx cannot
            # reference: link such a card to its notebook instead of the figure
            figures.append({"name": figure["name"], "caption": figure.get("caption", ""), "notebook": path.stem,
                            "title": title, "png": target, "referenceable": len(pngs) == 1})
    keep = {f["png"].name for f in figures}
    for stale in out_dir.glob("*.png") if out_dir.exists() else []:
        if stale.name not in keep:
            stale.unlink()
    return figures


def gallery_markdown(figures: list[dict]) -> str:
    """A grid of cards, one per figure: thumbnail, caption and notebook title, linked to the figure."""
    lines = ["% Generated by dvae_core/reproduce.py from the executed notebooks; do not edit by hand."]
    if not figures:
        return "\n".join(lines + ["No executed notebook with named figures yet."]) + "\n"
    lines += [":::::{grid} 1 2 3 3", ":gutter: 2", ""]
    for f in figures:
        caption = " ".join(f["caption"].split())
        lines += ["::::{grid-item-card}", f":img-top: /{FIGURES_DIR.relative_to(REPO_ROOT).as_posix()}/{f['png'].name}",
                  f":img-alt: {f['title']}: {caption}"[:300],
                  f":link: {f['name']}" if f["referenceable"] else f":link: /notebooks/{f['notebook']}",
                  ":link-type: ref" if f["referenceable"] else ":link-type: doc", "",
                  caption, "", ":::{card-footer}", ":class: sd-text-muted", f["title"], ":::", "::::", ""]
    lines.append(":::::")
    return "\n".join(lines) + "\n"


def gallery_path(paper_key: str) -> Path:
    """The figure gallery its chapter page includes: ``book/_generated/gallery-<paper>.md``."""
    return GENERATED_DIR / f"gallery-{paper_key}.md"


def chapter_galleries(figures: list[dict]) -> dict[str, str]:
    """Paper key → the gallery of its notebooks' figures, in book order."""
    return {entry.key: gallery_markdown([f for f in figures if entry.owns(f["notebook"])]) for entry in PAPERS}


def write_book_fragments(profile: str) -> None:
    """Regenerate what the hand-written pages include, for the book's profile only (a smoke or paper run
    changes no committed file): the timings table (every profile's committed times) and each chapter's
    figure gallery from the executed notebooks."""
    if profile != BOOK_PROFILE:
        return
    atomic_write_text(GENERATED_DIR / "timings.md", timings_markdown())
    for key, page in chapter_galleries(export_figures(book_notebooks())).items():
        atomic_write_text(gallery_path(key), page)


def aggregate(profile: str, timings: dict[str, float]) -> dict:
    claims = load_results(profile)
    scorecard = {"profile": profile, "claims": claims, "notebook_seconds": timings}
    atomic_write_text(RESULTS_DIR / profile / "scorecard.json", json.dumps(scorecard, indent=1) + "\n")
    page = SCORECARD_PAGE if profile == BOOK_PROFILE else RESULTS_DIR / profile / "scorecard.md"
    atomic_write_text(page, scorecard_markdown(claims, timings, profile, RESULTS_DIR))
    write_book_fragments(profile)
    return scorecard


def expected_duration(profile: str, names: list[str], timings: dict[str, float]) -> str:
    """One line saying how long ``names`` should take under ``profile``: the sum of their last recorded times
    (``results/<profile>/timings.json``), and which have none."""
    known = [n for n in names if n in timings]
    unknown = [n for n in names if n not in timings]
    text = f"[{profile}] {len(names)} notebook(s)"
    if known:
        text += (f": expected ≈ {sum(timings[n] for n in known) / 60:.0f} min from their last recorded times "
                 f"(results/{profile}/timings.json; less where the run store already holds their runs)")
    if unknown:
        text += f"; no recorded time for {', '.join(unknown)}"
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dvae_core.reproduce", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", required=True, help=f"one of {', '.join(PROFILES)}")
    parser.add_argument("--only", help="glob over notebook names, e.g. 'sbd_*'")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    parser.add_argument("--seed", type=int, default=0, help="offsets every training seed (0 to 2**31 - 1)")
    parser.add_argument("--output-dir", type=Path, help="where executed notebooks go (default: see module doc)")
    parser.add_argument("--pages-only", action="store_true",
                        help="run no notebook: rebuild the scorecard and the book's generated fragments from "
                             "results/ (after adding a GPU device check's files to results/gpu/, say)")
    args = parser.parse_args(argv)
    if args.pages_only:
        try:
            profile = check_profile(args.profile)
        except ValueError as err:
            parser.exit(2, f"error: {err}\n")
        timings_path = RESULTS_DIR / profile / "timings.json"
        aggregate(profile, read_json(timings_path) if timings_path.exists() else {})
        print(SCORECARD_PAGE if profile == BOOK_PROFILE else RESULTS_DIR / profile / "scorecard.md")
        return 0
    try:
        profile = check_profile(args.profile)
        resolve_device(args.device)  # 'cuda' on a machine without one fails here, not in every notebook
        if not 0 <= args.seed < 2 ** 31:
            raise ValueError(f"--seed {args.seed}: give a whole number from 0 to 2**31 - 1 (it offsets every "
                             f"training seed)")
        notebooks = find_notebooks(args.only)
        check_results(profile)
        check_loopback()
    except (ValueError, NoLoopbackError) as err:  # one line that names the fix, no usage block
        parser.exit(2, f"error: {err}\n")
    os.environ["DVAE_PROGRESS"] = "0"  # kernels inherit it: no progress bars inside committed outputs

    timings_path = RESULTS_DIR / profile / "timings.json"
    measured: dict[str, float] = {}
    failed = []
    print(expected_duration(profile, [n.stem for n in notebooks],
                            read_json(timings_path) if timings_path.exists() else {}), file=sys.stderr, flush=True)
    for notebook in notebooks:
        print(f"[{profile}] {notebook.stem} ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        try:
            execute(notebook, output_path(notebook, profile, args.output_dir), profile, args.device, args.seed)
        except Exception as err:  # papermill wraps the cell's error; report it and go on
            failed.append(notebook.stem)
            mark_stale(profile, notebook.stem, f"the notebook failed on {time.strftime('%Y-%m-%d %H:%M %Z')}; "
                                               f"these claims are from its last successful run")
            print(f"[{profile}] {notebook.stem} FAILED: {str(err).strip().splitlines()[-1] if str(err) else err!r}",
                  file=sys.stderr)
            continue
        measured[notebook.stem] = time.perf_counter() - start
    # read-merge-write at the end, under a lock: another reproduce run (another --only) may have
    # recorded its notebooks' times meanwhile, and must not lose them to ours
    lock_path = REPO_ROOT / "_build" / "locks" / f"timings-{profile}.lock"  # _build: never committed
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        timings = read_json(timings_path) if timings_path.exists() else {}
        timings.update(measured)
        atomic_write_text(timings_path, json.dumps(timings, indent=1, sort_keys=True) + "\n")
    scorecard = aggregate(profile, timings)

    print(f"\n{'notebook':40s} {'minutes':>8s}  claims")
    for notebook in notebooks:
        mine = [c for c in scorecard["claims"] if c["notebook"] == notebook.stem]
        minutes = "FAILED" if notebook.stem in failed else f"{timings[notebook.stem] / 60:.1f}"
        print(f"{notebook.stem:40s} {minutes:>8s}  {tally(mine)}")
    if failed:
        print(f"\n{len(failed)} notebook(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    from dvae_core.cli import run_main  # expected errors: one "error: ..." line, no traceback

    sys.exit(run_main(main))
