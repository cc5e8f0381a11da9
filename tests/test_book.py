"""The Jupyter Book builds offline, warning-free, and reads without any CDN.

Builds the real book (repo root, ``_config.yml`` + ``_toc.yml``) into a temporary folder with
warnings as errors, then checks the HTML: every TOC page exists, every script and stylesheet is
local, MathJax is the vendored copy, ``$…$`` math became MathJax-processable markup, and a page
with ipywidgets state loads the vendored widget manager. Notebooks are not executed by the build
(``execute_notebooks: off``); they are committed executed.

If ``book/vendor`` is missing, ``scripts/vendor_js.sh`` populates it first (npm ci).
When a ``chromium`` binary is on PATH, a headless browser with all network blocked also checks
that math and widgets really render from the vendored files.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
VENDOR = ROOT / "book" / "vendor"
MATHJAX_NAME = "tex-mml-chtml.js"
CDN_HOSTS = ("cdn.jsdelivr.net", "unpkg.com", "cdnjs.cloudflare.com", "fonts.googleapis.com",
             "fonts.gstatic.com", "ajax.googleapis.com", "code.jquery.com", "mybinder.org",
             "colab.research.google.com", "polyfill.io")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
# `$…$` / `$$…$$` in Markdown source (code removed first).
MATH_SRC = re.compile(r"(?<![\\$])\$\$?[^$\s][^$]*?\$")
BUILD_TIMEOUT = 300


# --------------------------------------------------------------------------- helpers


class _Tags(HTMLParser):
    """Collects <script>/<link> attributes, math markup and visible text of one page."""

    SKIP_TEXT = {"script", "style", "pre", "code", "textarea"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.scripts: list[dict] = []
        self.links: list[dict] = []
        self.math: list[str] = []
        self.text: list[str] = []
        self._stack: list[str] = []
        self._math_depth: int | None = None
        self._math_buf: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = {k: (v or "") for k, v in attrs}
        if tag == "script":
            self.scripts.append(a)
        elif tag == "link":
            self.links.append(a)
        if tag in ("link", "meta", "br", "img", "hr", "input"):
            return
        self._stack.append(tag)
        if self._math_depth is None and "math" in a.get("class", "").split() and tag in ("span", "div"):
            self._math_depth = len(self._stack)
            self._math_buf = []

    def handle_endtag(self, tag):
        if tag not in self._stack:
            return
        while self._stack:
            if self._math_depth is not None and len(self._stack) == self._math_depth:
                self.math.append("".join(self._math_buf))
                self._math_depth = None
            if self._stack.pop() == tag:
                break

    def handle_data(self, data):
        if self._math_depth is not None:
            self._math_buf.append(data)
        elif not self.SKIP_TEXT.intersection(self._stack):
            self.text.append(data)


def parse_page(path: Path) -> _Tags:
    p = _Tags()
    p.feed(path.read_text(encoding="utf8"))
    p.close()
    return p


def toc_files(toc: dict) -> list[str]:
    """All `file:` entries of a jb-book TOC, root first."""
    out = [toc["root"]]

    def walk(entries):
        for e in entries or []:
            if "file" in e:
                out.append(e["file"])
            walk(e.get("sections"))
            walk(e.get("chapters"))
            for part in e.get("parts", []) or []:
                walk(part.get("chapters"))

    walk(toc.get("chapters"))
    for part in toc.get("parts", []) or []:
        walk(part.get("chapters"))
    return out


def source_of(src_root: Path, docname: str) -> Path:
    for suffix in (".md", ".ipynb", ".rst"):
        if (src_root / f"{docname}{suffix}").exists():
            return src_root / f"{docname}{suffix}"
    raise FileNotFoundError(f"no source for TOC entry {docname!r} under {src_root}")


def markdown_text(path: Path) -> str:
    """Markdown of a page (a notebook's markdown cells), without code blocks or code spans."""
    if path.suffix == ".ipynb":
        nb = json.loads(path.read_text(encoding="utf8"))
        text = "\n\n".join("".join(c["source"]) if isinstance(c["source"], list) else c["source"]
                           for c in nb["cells"] if c["cell_type"] == "markdown")
    else:
        text = path.read_text(encoding="utf8")
    text = re.sub(r"^(```|~~~)[^\n]*\n.*?^\1[^\n]*$", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def is_remote(url: str) -> bool:
    return bool(urlsplit(url).scheme in ("http", "https") or url.startswith("//"))


def local_target(page: Path, url: str) -> Path:
    return (page.parent / urlsplit(url).path).resolve()


def jupyter_book() -> list[str]:
    exe = Path(sys.executable).with_name("jupyter-book")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("jupyter-book")
    assert found, "jupyter-book is not installed in this environment"
    return [found]


def build(src: Path, out: Path) -> Path:
    """`jupyter-book build src --path-output out -W --keep-going`; fails on any warning."""
    cmd = jupyter_book() + ["build", str(src), "--path-output", str(out), "--builder", "html",
                            "-W", "--keep-going"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=BUILD_TIMEOUT,
                          env={**os.environ, "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"})
    log = ANSI.sub("", proc.stdout + proc.stderr)
    problems = [ln for ln in log.splitlines() if re.search(r"\b(WARNING|ERROR|CRITICAL|SEVERE)\b", ln)]
    assert proc.returncode == 0 and not problems, (
        f"book build failed (rc={proc.returncode}) or warned:\n" + "\n".join(problems)
        + "\n--- log tail ---\n" + log[-4000:])
    html = out / "_build" / "html"
    assert html.is_dir(), f"no HTML output in {html}"
    return html


def ensure_vendor() -> None:
    if (VENDOR / "mathjax" / MATHJAX_NAME).exists() and (VENDOR / "jupyter-widgets" / "embed-amd.js").exists():
        return
    assert shutil.which("npm"), "book/vendor is missing and npm is not available to run scripts/vendor_js.sh"
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "vendor_js.sh")], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, f"scripts/vendor_js.sh failed:\n{proc.stdout}\n{proc.stderr}"


def book_config() -> dict:
    return yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf8"))


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    ensure_vendor()
    return build(ROOT, tmp_path_factory.mktemp("book"))


@pytest.fixture(scope="module")
def toc() -> dict:
    return yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf8"))


@pytest.fixture(scope="module")
def widget_book(tmp_path_factory) -> Path:
    """A one-page book with the real _config.yml and a notebook carrying ipywidgets state."""
    ensure_vendor()
    src = tmp_path_factory.mktemp("widget_src")
    shutil.copy(ROOT / "_config.yml", src / "_config.yml")
    (src / "book").mkdir()
    shutil.copytree(VENDOR, src / "book" / "vendor")
    (src / "_toc.yml").write_text("format: jb-book\nroot: nb/widgets\n", encoding="utf8")
    (src / "nb").mkdir()
    model = "0123456789abcdef0123456789abcdef"
    nb = {
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
            "widgets": {"application/vnd.jupyter.widget-state+json": {
                "version_major": 2, "version_minor": 0,
                "state": {model: {"model_name": "IntSliderModel", "model_module": "@jupyter-widgets/controls",
                                  "model_module_version": "2.0.0",
                                  "state": {"value": 7, "min": 0, "max": 10, "description": "k"}}}}},
        },
        "cells": [
            {"cell_type": "markdown", "id": "m1", "metadata": {},
             "source": ["# Widget page\n", "\n", "Inline $z \\in \\mathbb{R}^k$ and\n", "\n", "$$\\hat x = f(z)$$\n"]},
            {"cell_type": "code", "id": "c1", "metadata": {}, "execution_count": 1,
             "source": ["import ipywidgets as w\n", "w.IntSlider(7, description='k')"],
             "outputs": [{"output_type": "execute_result", "execution_count": 1, "metadata": {},
                          "data": {"text/plain": ["IntSlider(value=7, description='k')"],
                                   "application/vnd.jupyter.widget-view+json":
                                       {"version_major": 2, "version_minor": 0, "model_id": model}}}]},
        ],
    }
    (src / "nb" / "widgets.ipynb").write_text(json.dumps(nb), encoding="utf8")
    return build(src, tmp_path_factory.mktemp("widget_out"))


# --------------------------------------------------------------------------- tests


def test_every_toc_page_has_html(built, toc):
    missing = [f for f in toc_files(toc) if not (built / f"{f}.html").is_file()]
    assert not missing, f"TOC pages without HTML: {missing}"
    assert (built / "index.html").is_file()


def test_no_remote_scripts_or_stylesheets(built):
    bad = []
    for page in sorted(built.rglob("*.html")):
        tags = parse_page(page)
        template = page.parent.name == "_static"  # theme macro templates copied as static files
        for s in tags.scripts:
            if s.get("src") and is_remote(s["src"]):
                bad.append(f"{page.relative_to(built)}: <script src={s['src']}>")
            elif s.get("src") and not template and not local_target(page, s["src"]).is_file():
                bad.append(f"{page.relative_to(built)}: <script src={s['src']}> (file missing from build)")
        for ln in tags.links:
            rel = set(ln.get("rel", "").lower().split())
            if rel & {"stylesheet", "preload", "modulepreload", "icon", "manifest"} and is_remote(ln.get("href", "")):
                bad.append(f"{page.relative_to(built)}: <link rel={ln.get('rel')} href={ln['href']}>")
        text = page.read_text(encoding="utf8")
        bad += [f"{page.relative_to(built)}: mentions {h}" for h in CDN_HOSTS if h in text]
    assert not bad, "remote assets in the built HTML:\n" + "\n".join(bad)


def test_mathjax_is_the_vendored_copy(built, toc):
    pages = [built / f"{f}.html" for f in toc_files(toc)]
    with_math = [p for p in pages if parse_page(p).math]
    assert with_math, "no TOC page contains math; the SBD chapter opener should"
    for page in with_math:
        srcs = [s["src"] for s in parse_page(page).scripts if MATHJAX_NAME in s.get("src", "")]
        assert len(srcs) == 1, f"{page.name}: expected one MathJax <script>, got {srcs}"
        target = local_target(page, srcs[0])
        assert not is_remote(srcs[0]) and target.is_file(), f"{page.name}: MathJax not local: {srcs[0]}"
        assert target == (built / "_static" / "mathjax" / MATHJAX_NAME).resolve()
    fonts = built / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2"
    assert any(fonts.glob("*.woff")), "MathJax CHTML fonts were not copied into the build"
    assert (built / "_static" / "mathjax" / "input" / "tex" / "extensions" / "cancel.js").is_file(), \
        "MathJax's autoloaded TeX extensions were not copied into the build"


def test_dollar_math_becomes_mathjax_markup(built, toc):
    checked = []
    for docname in toc_files(toc):
        src = source_of(ROOT, docname)
        if not MATH_SRC.search(markdown_text(src)):
            continue
        tags = parse_page(built / f"{docname}.html")
        assert tags.math, f"{docname}: source has $…$ math but the HTML has no math elements"
        for m in tags.math:
            body = m.strip()
            assert (body.startswith(r"\(") and body.endswith(r"\)")) or \
                   (body.startswith(r"\[") and body.endswith(r"\]")) or body.startswith(r"\begin"), \
                f"{docname}: math not in a MathJax delimiter form: {body[:80]!r}"
        if src.suffix == ".md":  # our own prose: no `$…$` may survive as plain text
            leftover = MATH_SRC.findall(" ".join(tags.text))
            assert not leftover, f"{docname}: unconverted $…$ in the text: {leftover[:5]}"
        assert any(MATHJAX_NAME in s.get("src", "") for s in tags.scripts), f"{docname}: MathJax not loaded"
        checked.append(docname)
    assert "book/sbd" in checked, f"the SBD chapter opener should contain math; checked {checked}"


def test_widget_pages_load_the_vendored_manager(widget_book):
    page = widget_book / "nb" / "widgets.html"
    tags = parse_page(page)
    srcs = [s.get("src", "") for s in tags.scripts]
    types = [s.get("type", "") for s in tags.scripts]
    assert "application/vnd.jupyter.widget-state+json" in types, "widget state was not embedded"
    req = [i for i, s in enumerate(srcs) if s.split("?")[0].endswith("requirejs/require.js")]
    emb = [i for i, s in enumerate(srcs) if s.split("?")[0].endswith("jupyter-widgets/embed-amd.js")]
    assert req and emb and req[0] < emb[0], f"require.js must load before embed-amd.js: {srcs}"
    for i in (req[0], emb[0]):
        assert not is_remote(srcs[i]) and local_target(page, srcs[i]).is_file(), srcs[i]
    cdn = tags.scripts[emb[0]].get("data-jupyter-widgets-cdn", "")
    assert cdn and not is_remote(cdn), f"widget CDN fallback must stay local, got {cdn!r}"
    fonts = list((widget_book / "_static" / "jupyter-widgets").glob("*.woff2"))
    assert fonts, "the widget manager's fonts were not copied next to embed-amd.js"


def test_widget_config_points_at_vendored_files():
    js = book_config()["sphinx"]["config"]["nb_ipywidgets_js"]
    for path, attrs in js.items():
        assert not is_remote(path) and all(not is_remote(v) for v in attrs.values() if isinstance(v, str)), path
        if path:
            assert (VENDOR / path).is_file(), f"nb_ipywidgets_js entry {path} is not in book/vendor"


# --------------------------------------------------------------------------- optional: real browser


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def _render(url: str) -> str:
    cmd = [_chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--host-resolver-rules=MAP * ~NOTFOUND", "--virtual-time-budget=15000", "--dump-dom", url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.mark.skipif(_chromium() is None, reason="no chromium on PATH: browser rendering check skipped")
def test_offline_browser_renders_math_and_widgets(built, widget_book):
    dom = _render((built / "book" / "sbd.html").as_uri())
    assert "<mjx-container" in dom and "<mjx-merror" not in dom, "MathJax did not typeset the SBD page offline"
    dom = _render((widget_book / "nb" / "widgets.html").as_uri())
    assert "<mjx-container" in dom, "MathJax did not typeset the widget page offline"
    assert "widget-slider" in dom, "the IntSlider was not rendered by the vendored widget manager"
