"""The Jupyter Book builds offline, warning-free, and reads without any CDN.

Builds the real book (repo root, ``_config.yml`` + ``_toc.yml``) into a temporary folder with
warnings as errors, then checks the HTML: every TOC page exists, every script and stylesheet is
local, MathJax is the vendored copy, ``$…$`` math became MathJax-processable markup, and a page
with ipywidgets state loads the vendored widget manager. Notebooks are not executed by the build
(``execute_notebooks: off``); they are committed executed.

If ``book/vendor`` is missing, ``scripts/vendor_js.sh`` populates it first (npm ci).
Then every page is opened in headless Chromium from file:// with the network off, through the
Chrome DevTools Protocol: no console errors, no request leaving the machine, every image loads,
MathJax typesets every formula, the traversal explorer's widgets render, and screenshots of three
pages are written to ``<build>/_screenshots/`` (copied to ``_build/screenshots/``).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import time
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


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> Path:
    ensure_vendor()
    return build(ROOT, tmp_path_factory.mktemp("book"))


@pytest.fixture(scope="session")
def toc() -> dict:
    return yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf8"))


@pytest.fixture(scope="session")
def widget_book(tmp_path_factory) -> Path:
    """A one-page book with the real _config.yml and a notebook carrying ipywidgets state."""
    ensure_vendor()
    src = tmp_path_factory.mktemp("widget_src")
    shutil.copy(ROOT / "_config.yml", src / "_config.yml")
    (src / "book").mkdir()
    shutil.copytree(VENDOR, src / "book" / "vendor")
    shutil.copytree(ROOT / "book" / "_ext", src / "book" / "_ext")  # the config's local extension
    shutil.copy(ROOT / "book" / "references.bib", src / "book" / "references.bib")
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


def test_every_notebook_page_opens_with_the_command_that_reruns_it(built, toc):
    pages = [f for f in toc_files(toc) if f.startswith("notebooks/")]
    assert pages
    def visible_text(page: str) -> str:  # the words of the page, without the tags code literals are split into
        html = (built / f"{page}.html").read_text(encoding="utf8")
        return " ".join(re.sub(r"<[^>]+>", " ", html).split())

    for page in pages:
        name = page.split("/", 1)[1]
        assert f"Re-run this page: .venv/bin/python -m dvae_core.reproduce --profile preview --only {name}" \
            in visible_text(page), page
    offset = json.loads((ROOT / "results" / "preview" / "sbd_fig2_deconv_vs_sb.json").read_text())["seed_offset"]
    assert f"--only sbd_fig2_deconv_vs_sb --seed {offset}" in visible_text("notebooks/sbd_fig2_deconv_vs_sb")


def test_notebook_pages_show_their_verdicts_and_deviations(built, toc):
    """Each notebook page with claims lists its verdicts under the title and ends with their cards (the
    results file's claims, by dvae_core.verdicts); a notebook that trains folds its preview-vs-paper table;
    papermill's injected parameters cell is not shown; the imports and parameters cells are folded."""
    for page in [f for f in toc_files(toc) if f.startswith("notebooks/")]:
        name = page.split("/", 1)[1]
        html = (built / f"{page}.html").read_text(encoding="utf8")
        assert "tag_injected-parameters" not in html, page
        # the imports cell folds whole, or only its code where its output is the page's table (hide-input)
        folded = html.count("tag_hide-cell") + html.count("tag_hide-input")
        assert folded >= 2, f"{page}: the parameters and imports cells are not folded"
        results = ROOT / "results" / "preview" / f"{name}.json"
        claims = json.loads(results.read_text())["claims"] if results.exists() else []
        for claim in claims:
            assert f'id="claim-{claim["id"]}"' in html and f'href="#claim-{claim["id"]}"' in html, (page, claim["id"])
        if claims:
            assert "verdicts-at-a-glance" in html and html.count('class="verdict-card verdict-') == len(claims), page
    fig2 = (built / "notebooks" / "sbd_fig2_deconv_vs_sb.html").read_text(encoding="utf8")
    assert '<details class="deviations">' in fig2 and "<td>image size (pixels)</td><td>32</td><td>64</td>" in fig2
    assert "dvae.css" in fig2


def test_the_bibliography_lists_the_papers_and_the_chapters_cite_it(built):
    references = (built / "book" / "references.html").read_text(encoding="utf8")
    for title in ("Spatial Broadcast Decoder", "Disentangling by Factorising",
                  "From Variational to Deterministic Autoencoders", "Variational Lossy Autoencoder"):
        assert title in references, title
    for chapter in ("sbd", "factorvae", "rae", "vlae"):
        assert 'href="references.html#' in (built / "book" / f"{chapter}.html").read_text(encoding="utf8"), chapter


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


# --------------------------------------------------------------------------- real browser (headless Chromium)
#
# Every built page is opened from file:// in Debian's headless Chromium with the network cut off
# (every host name resolves to nothing and every proxied request goes to a closed port), driven
# through the Chrome DevTools Protocol over a pipe (--remote-debugging-pipe: NUL-separated JSON on
# file descriptors 3 and 4; no websocket library, no browser download). scripts/setup.sh installs
# chromium where apt exists; without it these tests skip, except in CI, where they fail.

BROWSER_TIMEOUT = 20  # seconds for one page to load, typeset and render its widgets
SCREENSHOTS = {"landing": "book/intro", "fig2": "notebooks/sbd_fig2_deconv_vs_sb", "scorecard": "book/scorecard",
               "explorer": "notebooks/sbd_explorer"}
EXPLORER_PAGE = "notebooks/sbd_explorer"
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:", "chrome:", "devtools:")

# Runs in the page after its load event: waits for MathJax's first typeset and for the widget
# manager to replace every widget-view script, then reports what a reader would see.
PAGE_PROBE = r"""
(async () => {
  const sleep = ms => new Promise(r => setTimeout(r, ms));
  const deadline = Date.now() + %d;
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  const views = () => document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]');
  const rendered = () => document.querySelectorAll('.jupyter-widgets').length;
  while (views().length && rendered() < views().length && Date.now() < deadline) { await sleep(100); }
  const images = Array.from(document.images);
  images.forEach(i => { i.loading = 'eager'; });
  await Promise.all(images.map(i => i.decode().catch(() => null)));
  // Fonts declared in CSS load only when a glyph needs them, which depends on timing and on the
  // browser build; load every one now so a font the page cannot find fails here, every time.
  const fonts = Array.from(document.fonts || []);
  const fontFailures = (await Promise.all(fonts.map(f => f.load().then(() => null, () => f.family))))
    .filter(Boolean);
  const math = Array.from(document.querySelectorAll('.math'));
  return {
    fonts: fonts.length,
    fontFailures: fontFailures,
    title: document.title,
    images: images.map(i => ({src: (i.currentSrc || i.src).slice(0, 120), width: i.naturalWidth,
                              alt: i.getAttribute('alt') || ''})),
    math: math.length,
    mathTypeset: math.filter(m => m.querySelector('mjx-container')).length,
    mjx: document.querySelectorAll('mjx-container').length,
    mjxErrors: document.querySelectorAll('mjx-merror').length,
    widgetViews: views().length,
    widgets: rendered(),
    sliders: document.querySelectorAll('.widget-slider').length,
    widgetImages: Array.from(document.querySelectorAll('.jupyter-widgets img')).map(i => i.naturalWidth),
    animations: document.querySelectorAll('.animation input[type=range]').length,
    height: Math.ceil(document.documentElement.scrollHeight),
  };
})()
"""


def _console_errors(events: list[dict]) -> list[str]:
    """Console errors and assertions, uncaught exceptions and error log entries among DevTools ``events``."""
    errors = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            errors.append("console." + params["type"] + ": " + " ".join(
                str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            errors.append("uncaught: " + details.get("exception", {}).get("description", details.get("text", "")))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            errors.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
    return errors


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    return None


class Chromium:
    """Headless Chromium driven by the DevTools Protocol over --remote-debugging-pipe."""

    def __init__(self, exe: str, profile_dir: Path, width: int = 1280, height: int = 900):
        import queue
        import threading

        self.width, self.height = width, height

        # Our pipe ends, moved to fds >= 10 so that bash can put them at 3 and 4 without a clash.
        def high(fd):
            moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
            os.close(fd)
            return moved

        to_browser_r, self._to_browser = (high(fd) for fd in os.pipe())
        self._from_browser, from_browser_w = (high(fd) for fd in os.pipe())
        # the browser reads our commands on its fd 3 and writes its replies on its fd 4
        wire = f'exec "$@" 3<&{to_browser_r} 4>&{from_browser_w} {to_browser_r}<&- {from_browser_w}>&-'
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--no-default-browser-check", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-extensions", "--disable-default-apps", "--mute-audio",
                 "--hide-scrollbars", "--remote-debugging-pipe", f"--user-data-dir={profile_dir}",
                 f"--window-size={width},{height}",
                 # the network is off: no name resolves, and anything proxied goes to a closed port
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost", "--proxy-server=127.0.0.1:9",
                 "about:blank"]
        self.proc = subprocess.Popen(["bash", "-c", wire, "bash", exe, *flags], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     pass_fds=(to_browser_r, from_browser_w))
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._next_id = 0
        self._replies: dict[int, dict] = {}
        self.events: "queue.Queue[dict]" = queue.Queue()
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        buffer = b""
        while True:
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                return
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for raw in messages:
                message = json.loads(raw)
                if "id" in message:
                    with self._cond:
                        self._replies[message["id"]] = message
                        self._cond.notify_all()
                else:
                    self.events.put(message)

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = BROWSER_TIMEOUT) -> dict:
        self._next_id += 1
        call = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            call["sessionId"] = session
        os.write(self._to_browser, json.dumps(call).encode() + b"\0")
        with self._cond:
            if not self._cond.wait_for(lambda: call["id"] in self._replies, timeout):
                raise TimeoutError(f"no reply to {method} within {timeout}s")
            reply = self._replies.pop(call["id"])
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def new_page(self) -> str:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable", session=session)
        self.send("Emulation.setDeviceMetricsOverride", {"width": self.width, "height": self.height,
                                                         "deviceScaleFactor": 1, "mobile": False}, session)
        return session

    def drain(self) -> list[dict]:
        import queue

        out = []
        while True:
            try:
                out.append(self.events.get_nowait())
            except queue.Empty:
                return out

    def visit(self, session: str, url: str) -> tuple[dict, list[str], list[str]]:
        """Load ``url``, wait for it to settle; returns (probe, console errors, non-local requests)."""
        import queue

        self.drain()
        self.send("Page.navigate", {"url": url}, session)
        deadline = time.monotonic() + BROWSER_TIMEOUT
        seen = []
        while not any(e.get("method") == "Page.loadEventFired" and e.get("sessionId") == session for e in seen):
            try:
                seen.append(self.events.get(timeout=max(0.05, deadline - time.monotonic())))
            except queue.Empty:
                raise TimeoutError(f"{url}: no load event within {BROWSER_TIMEOUT}s") from None
        probe = self.send("Runtime.evaluate", {"expression": PAGE_PROBE % (BROWSER_TIMEOUT * 1000 // 2),
                                               "awaitPromise": True, "returnByValue": True}, session)
        if "exceptionDetails" in probe:
            raise RuntimeError(f"{url}: probe failed: {probe['exceptionDetails']}")
        time.sleep(0.2)  # let late console messages arrive
        seen += self.drain()
        requests = [e["params"].get("request", {}).get("url", "") for e in seen
                    if e.get("method") == "Network.requestWillBeSent"]
        return probe["result"]["value"], _console_errors(seen), [u for u in requests if not u.startswith(LOCAL_SCHEMES)]

    def screenshot(self, session: str, path: Path, height: int, max_height: int = 4000) -> None:
        import base64

        height = max(self.height, min(height, max_height))
        self.send("Emulation.setDeviceMetricsOverride", {"width": self.width, "height": height,
                                                         "deviceScaleFactor": 1, "mobile": False}, session)
        shot = self.send("Page.captureScreenshot", {"format": "png"}, session)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        self.send("Emulation.setDeviceMetricsOverride", {"width": self.width, "height": self.height,
                                                         "deviceScaleFactor": 1, "mobile": False}, session)

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_browser)


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    exe = _chromium()
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("no chromium on PATH in CI: scripts/setup.sh should have installed Debian's chromium")
        pytest.skip("no chromium on PATH (scripts/setup.sh installs it where apt exists): browser checks skipped")
    chrome = Chromium(exe, tmp_path_factory.mktemp("chromium-profile"))
    yield chrome
    chrome.close()


@pytest.fixture(scope="session")
def rendered(built, toc, browser) -> dict[str, dict]:
    """Every TOC page plus the search and general index pages, opened offline; screenshots
    of the landing page, the Fig. 2 notebook, the scorecard and the explorer go to ``<build>/_screenshots/``
    (and a copy to ``_build/screenshots/`` in the repository)."""
    # (index.html only redirects to the root page)
    pages = [f"{f}.html" for f in toc_files(toc)] + ["search.html", "genindex.html"]
    session = browser.new_page()
    out = {}
    for page in pages:
        probe, errors, requests = browser.visit(session, (built / page).as_uri())
        out[page] = {"probe": probe, "errors": errors, "requests": requests}
        name = next((k for k, v in SCREENSHOTS.items() if f"{v}.html" == page), None)
        if name:
            shot = built / "_screenshots" / f"{name}.png"
            browser.screenshot(session, shot, probe["height"])
            copy = ROOT / "_build" / "screenshots" / shot.name
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(shot, copy)
            out[page]["screenshot"] = shot
    return out


def test_browser_pages_load_without_errors_or_network(rendered):
    bad = [f"{page}: {e}" for page, r in rendered.items() for e in r["errors"]]
    bad += [f"{page}: tried to fetch {u}" for page, r in rendered.items() for u in r["requests"]]
    bad += [f"{page}: font {f!r} did not load" for page, r in rendered.items() for f in r["probe"]["fontFailures"]]
    assert not bad, "pages misbehave in an offline browser:\n" + "\n".join(bad)


def test_browser_every_image_loads(rendered):
    broken = [f"{page}: {img['src']}" for page, r in rendered.items() for img in r["probe"]["images"]
              if img["width"] == 0]
    assert not broken, "images that did not load (naturalWidth 0):\n" + "\n".join(broken)
    assert any(r["probe"]["images"] for r in rendered.values()), "no page has an image at all"


def test_browser_every_image_has_alt_text(rendered):
    """Every image says what it shows: no empty alt, and not a file name (myst-nb's default)."""
    def file_name(alt: str) -> bool:
        return not alt.strip() or bool(re.match(r"^\S*\.(png|jpe?g|svg|gif)$", alt.strip(), re.IGNORECASE))

    bad = [f"{page}: {img['src']} alt={img['alt']!r}" for page, r in rendered.items() for img in r["probe"]["images"]
           if file_name(img["alt"])]
    assert not bad, "images without a meaningful alt text:\n" + "\n".join(bad[:20])


PHONE_PROBE = """
(() => {
  const width = document.documentElement.clientWidth;
  const outside = sel => Array.from(document.querySelectorAll(sel))
    .filter(e => e.getBoundingClientRect().right > width + 1).length;
  return {width: width, scrollWidth: document.documentElement.scrollWidth,
          cards: document.querySelectorAll('.verdict-card').length,
          badges: document.querySelectorAll('.verdict-card .sd-badge, .verdict-badge').length,
          cardsOutside: outside('.verdict-card'), badgesOutside: outside('.verdict-card .sd-badge, .verdict-badge'),
          height: Math.ceil(document.documentElement.scrollHeight)};
})()
"""


def test_browser_scorecard_and_a_notebook_page_read_on_a_phone(built, browser):
    """At 414 px (a phone) every verdict card and badge is on screen and nothing scrolls sideways; a
    screenshot of the scorecard goes to ``<build>/_screenshots/scorecard-414.png``."""
    session = browser.new_page()
    browser.send("Emulation.setDeviceMetricsOverride", {"width": 414, "height": 900, "deviceScaleFactor": 1,
                                                        "mobile": True}, session)
    for page in ("book/scorecard", "notebooks/sbd_fig2_deconv_vs_sb"):
        _, errors, requests = browser.visit(session, (built / f"{page}.html").as_uri())
        assert not errors and not requests, (page, errors, requests)
        probe = browser.send("Runtime.evaluate", {"expression": PHONE_PROBE, "returnByValue": True},
                             session)["result"]["value"]
        assert probe["cards"] and probe["badges"] >= probe["cards"], (page, probe)
        assert probe["cardsOutside"] == 0 and probe["badgesOutside"] == 0, (page, probe)
        assert probe["scrollWidth"] <= probe["width"] + 1, f"{page} scrolls sideways at 414 px: {probe}"
        if page == "book/scorecard":
            shot = built / "_screenshots" / "scorecard-414.png"
            height = min(probe["height"], 4000)
            browser.send("Emulation.setDeviceMetricsOverride", {"width": 414, "height": height,
                                                                "deviceScaleFactor": 1, "mobile": True}, session)
            import base64

            shot.parent.mkdir(parents=True, exist_ok=True)
            shot.write_bytes(base64.b64decode(browser.send("Page.captureScreenshot", {"format": "png"},
                                                           session)["data"]))
            copy = ROOT / "_build" / "screenshots" / shot.name
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(shot, copy)
            browser.send("Emulation.setDeviceMetricsOverride", {"width": 414, "height": 900,
                                                                "deviceScaleFactor": 1, "mobile": True}, session)


def test_browser_math_is_typeset(rendered):
    with_math = {p: r["probe"] for p, r in rendered.items() if r["probe"]["math"]}
    assert "book/sbd.html" in with_math, "the SBD chapter opener has math"
    bad = [f"{p}: {v['mathTypeset']}/{v['math']} math elements typeset, {v['mjxErrors']} errors"
           for p, v in with_math.items() if v["mathTypeset"] < v["math"] or v["mjxErrors"] or not v["mjx"]]
    assert not bad, "MathJax did not typeset offline:\n" + "\n".join(bad)


def test_browser_explorer_widgets_render(rendered):
    probe = rendered[f"{EXPLORER_PAGE}.html"]["probe"]
    if not probe["widgetViews"]:
        pytest.fail(f"{EXPLORER_PAGE} carries no widget views: execute it with "
                    "`python -m dvae_core.reproduce --profile preview --only sbd_explorer`")
    assert probe["widgets"] >= probe["widgetViews"], f"widgets not rendered by the vendored manager: {probe}"
    assert probe["sliders"] >= 2, f"the explorer's sliders did not render: {probe}"
    assert probe["widgetImages"] and all(w > 0 for w in probe["widgetImages"]), \
        f"the explorer's decoded image did not render: {probe['widgetImages']}"
    assert probe["animations"] == 1, "the kernel-free traversal slider (JS animation) is missing"


# Runs on the explorer page: waits for the live decoder (book/_ext/live_decoder.py) to start, then, in each
# panel, moves the first slider (the highest-KL latent) to its maximum and picks another seed image, and
# reports whether the decoded canvas changed each time and how far the page's reference decoding is from torch's.
LIVE_PROBE = r"""
(async () => {
  const sleep = ms => new Promise(r => setTimeout(r, ms));
  const deadline = Date.now() + %d;
  const box = document.querySelector('.dvae-live-decoder');
  if (!box) return {found: false};
  while (box.dataset.state === 'loading' && Date.now() < deadline) await sleep(100);
  const out = {found: true, state: box.dataset.state, text: box.textContent.slice(0, 300), panels: []};
  for (const panel of box.querySelectorAll('.live-panel')) {
    const canvas = panel.querySelector('canvas.live-output');
    const decodes = () => Number(panel.dataset.decodes);
    const settle = async n => { while (decodes() < n && Date.now() < deadline) await sleep(20); await sleep(50); };
    await settle(1);
    const start = canvas.toDataURL();
    const slider = panel.querySelector('input[type=range]');
    let n = decodes();
    slider.value = slider.max;
    slider.dispatchEvent(new Event('input'));
    await settle(n + 1);
    const moved = canvas.toDataURL();
    n = decodes();
    box.querySelectorAll('.live-chooser button')[3].click();
    await settle(n + 1);
    out.panels.push({model: panel.dataset.model, sliders: panel.querySelectorAll('input[type=range]').length,
                     sliderChangesImage: moved !== start, seedImageChangesImage: canvas.toDataURL() !== moved,
                     maxAbsDiff: Number(panel.dataset.maxAbsDiff), decodes: decodes(),
                     decodeMs: Number(panel.dataset.decodeMs)});
  }
  return out;
})()
"""


def test_browser_live_decoder_decodes_sliders_in_the_page(built, browser):
    """The explorer's live decoder, offline from file://: onnxruntime-web starts, both decoders' reference
    decodings match torch's, and moving a slider or choosing a seed image changes the decoded image, with no
    console error and no request off the machine. Screenshot: ``<build>/_screenshots/live-decoder.png``."""
    session = browser.new_page()
    _, errors, requests = browser.visit(session, (built / f"{EXPLORER_PAGE}.html").as_uri())
    reply = browser.send("Runtime.evaluate", {"expression": LIVE_PROBE % (BROWSER_TIMEOUT * 1000),
                                              "awaitPromise": True, "returnByValue": True}, session,
                         timeout=BROWSER_TIMEOUT + 5)
    live = reply["result"]["value"]
    time.sleep(0.2)
    errors += _console_errors(browser.drain())
    assert live["found"], f"{EXPLORER_PAGE} has no live decoder: tag its export cell `live-decoder`"
    assert live["state"] == "ready", live
    description = json.loads((ROOT / "results" / "preview" / "sbd_explorer" / "decoders.json").read_text())
    assert [p["model"] for p in live["panels"]] == [m["key"] for m in description["models"]]
    for panel, model in zip(live["panels"], description["models"]):
        assert panel["sliders"] == model["latent_dim"], panel
        assert panel["sliderChangesImage"] and panel["seedImageChangesImage"], panel
        assert panel["maxAbsDiff"] <= description["tolerance"], panel
        assert panel["decodeMs"] >= 0, panel  # the panel shows how long its last decoding took
    assert not errors and not requests, (errors, requests)
    shot = built / "_screenshots" / "live-decoder.png"
    browser.send("Runtime.evaluate", {"expression": "document.querySelector('.dvae-live-decoder').scrollIntoView()"},
                 session)
    browser.screenshot(session, shot, browser.height)
    copy = ROOT / "_build" / "screenshots" / shot.name
    copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, copy)


def test_browser_widget_page_renders(widget_book, browser):
    """The one-page widget book (synthetic state) renders its slider and math offline too."""
    session = browser.new_page()
    probe, errors, requests = browser.visit(session, (widget_book / "nb" / "widgets.html").as_uri())
    assert not errors and not requests, (errors, requests)
    assert probe["sliders"] == 1 and probe["mjx"] >= 2 and not probe["mjxErrors"], probe
    # the widget CSS declares Font Awesome; the probe loads every declared font
    assert probe["fonts"] and not probe["fontFailures"], probe


def test_browser_screenshots_written(rendered):
    shots = {p: r.get("screenshot") for p, r in rendered.items() if r.get("screenshot")}
    assert len(shots) == len(SCREENSHOTS), f"expected screenshots of {sorted(SCREENSHOTS.values())}: {shots}"
    for shot in shots.values():
        assert shot.stat().st_size > 10_000, f"{shot} looks empty"


# --------------------------------------------------------------------------- generated pages, explorer


def test_generated_fragments_match_results_and_notebooks(tmp_path):
    """The landing page's gallery and the scorecard are what reproduce makes from the committed
    notebooks and results/preview (nobody edited them by hand, and they are not stale)."""
    from dvae_core import reproduce

    figures = reproduce.export_figures(reproduce.book_notebooks(), tmp_path)
    regenerate = ("regenerate with `.venv/bin/python -c \"from dvae_core.reproduce import write_book_fragments; "
                  "write_book_fragments('preview')\"` (or any `reproduce --profile preview` run)")
    for key, gallery in reproduce.chapter_galleries(figures).items():
        gallery = gallery.replace(tmp_path.relative_to(tmp_path.anchor).as_posix(), "book/_generated/figures")
        committed = reproduce.gallery_path(key)
        assert committed.exists() and committed.read_text() == gallery, f"{committed} is stale: {regenerate}"
        chapter = ROOT / next(p for p in reproduce.PAPERS if p.key == key).chapter
        assert f"_generated/gallery-{key}.md" in chapter.with_suffix(".md").read_text(), f"{chapter} has no gallery"
    for f in figures:
        target = ROOT / "book" / "_generated" / "figures" / f["png"].name
        assert target.exists() and target.read_bytes() == f["png"].read_bytes(), f"{target} is stale: {regenerate}"
    scorecard = reproduce.RESULTS_DIR / "preview" / "scorecard.json"
    if scorecard.exists():
        data = json.loads(scorecard.read_text())
        page = reproduce.scorecard_markdown(data["claims"], data["notebook_seconds"], "preview")
        assert (ROOT / "book" / "scorecard.md").read_text() == page, "book/scorecard.md differs from results/preview"
        assert reproduce.CLAIMS_START in page and reproduce.CLAIMS_END in page


def test_gallery_and_timings_markdown(tmp_path, monkeypatch):
    from dvae_core import reproduce

    for profile, seconds in (("smoke", 12.0), ("preview", 600.0)):
        (tmp_path / profile).mkdir()
        (tmp_path / profile / "timings.json").write_text(json.dumps({"nb_a": seconds, "nb_b": seconds / 2}))
    monkeypatch.setattr(reproduce, "book_notebooks", lambda: [Path("notebooks/nb_a.ipynb")])
    table = reproduce.timings_markdown(tmp_path)
    assert "| [nb_a](../notebooks/nb_a.ipynb) | 0.2 min | 10.0 min | not measured |" in table
    assert "| `nb_b` (not in the book yet) | 0.1 min | 5.0 min | not measured |" in table
    assert table.rstrip().endswith("| **the whole book** | **0.2 min** | **10.0 min** | not measured |")
    png = reproduce.REPO_ROOT / "book" / "x.png"
    md = reproduce.gallery_markdown([
        {"name": "fig-a", "caption": "A  caption", "notebook": "nb_a", "title": "NB A", "png": png, "referenceable": True},
        {"name": "fig-b", "caption": "B", "notebook": "nb_b", "title": "NB B", "png": png, "referenceable": False}])
    assert ":img-top: /book/_generated/figures/x.png" in md and ":link: fig-a\n:link-type: ref" in md
    assert ":link: /notebooks/nb_b\n:link-type: doc" in md and "A caption" in md
    assert md.count("::::{grid-item-card}") == 2 and md.count(":::{card-footer}") == 2


def _tiny_vae(decoder: str):
    import torch

    from dvae_core.models import VAE, VAEConfig

    torch.manual_seed(0)
    return VAE(VAEConfig(decoder=decoder, latent_dim=4, resolution=16, encoder_channels=4, decoder_channels=4,
                         hidden=8, sb_layers=2, sb_padding="same")).eval()


def test_explorer_decodes_live_and_offline():
    import torch

    from dvae_core.papers.sbd import explorer

    models = {"DeConv": _tiny_vae("deconv"), "SB": _tiny_vae("sb")}
    images = torch.rand(3, 3, 16, 16)
    moved = explorer.decode_at(models["SB"], images[0], 1, 3.0)
    assert moved.shape == (3, 16, 16) and not torch.allclose(moved, explorer.decode_at(models["SB"], images[0], 1, -3.0))
    html = explorer.animation_html(explorer.traversal_animation(models, images[0], n_dims=2, values=[-1.0, 0.0, 1.0]))
    assert "http" not in html and 'class="fa' not in html and html.count("data:image/png;base64") == 3


def test_explorer_widget_redraws_on_every_control():
    import torch

    from dvae_core.papers.sbd import explorer
    from dvae_core.train import TrainConfig

    runs = [{"model": _tiny_vae(d), "config": TrainConfig(model=_tiny_vae(d).config, seed=s)}
            for d, s in (("deconv", 0), ("sb", 0))]
    ui = explorer.TraversalExplorer(runs, torch.rand(2, 3, 16, 16), {("sb", 0): 0.5}, initial=runs[1])
    assert ui.model.value == 1 and "MIG 0.500" in ui.model.options[1][0] and len(ui.dim.options) == 4
    seen = {bytes(ui.view.value)}
    for control, value in ((ui.value, -2.0), (ui.dim, ui.dim.options[-1][1]), (ui.image, 1), (ui.model, 0)):
        control.value = value
        seen.add(bytes(ui.view.value))
    assert len(seen) == 5 and all(png.startswith(b"\x89PNG") for png in seen)
