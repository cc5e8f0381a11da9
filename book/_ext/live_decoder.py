"""Sphinx extension: the explorer's live decoder on the static page (no kernel, no network, from file://).

After the outputs of a notebook cell tagged ``live-decoder`` (the cell that exports the decoders) comes the
live view: a container that
``book/_ext/static/live_decoder.js`` fills with sliders and canvases, and the scripts it needs, in this order:

1. ``_static/onnxruntime-web/ort-wasm.gz.base64.js``: onnxruntime-web's WebAssembly binary (vendored from npm
   by ``scripts/vendor_js.sh``), as a classic script, because a page opened from file:// may not fetch files;
2. ``_static/dvae-live-decoders-<notebook>.js``: ``results/preview/<notebook>/decoders.json`` with the ONNX files
   (written by :func:`dvae_core.browser.write_live_decoders` when the notebook runs), written here at build time;
3. ``_static/live_decoder.js``: the view;
4. onnxruntime-web's wasm-only ES bundle, inline, because file:// pages may not import module files either; its
   ``export`` statement becomes ``globalThis.ort = {...}``, and it then fires ``dvae-ort-ready``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from docutils import nodes
from sphinx.errors import ExtensionError

PROFILE = "preview"
TAG = "live-decoder"
BUNDLE = Path("book/vendor/onnxruntime-web/ort.wasm.bundle.min.mjs")
EXPORTS = re.compile(r"export\s*\{([^}]*)\};?\s*(//# sourceMappingURL=\S*)?\s*$")


def module_script(bundle: str) -> str:
    """The ES bundle as an inline module that publishes its exports as ``globalThis.ort``."""
    match = EXPORTS.search(bundle)
    if match is None:
        raise ExtensionError(f"{BUNDLE}: no trailing export statement (has onnxruntime-web's bundle changed?)")
    pairs = []
    for item in match.group(1).split(","):
        local, _, exported = (part.strip() for part in item.partition(" as "))
        pairs.append(f"{json.dumps(exported or local)}: {local}")
    body = bundle[:match.start()] + "globalThis.ort = {" + ", ".join(pairs) + "};\n"
    if "</script" in body.lower():
        raise ExtensionError(f"{BUNDLE}: contains '</script', which cannot be inlined in a page")
    return body + 'window.dispatchEvent(new Event("dvae-ort-ready"));\n'


def _decoders_folder(srcdir: Path, name: str) -> Path:
    return srcdir / "results" / PROFILE / name


def _static_file(name: str) -> str:
    return f"dvae-live-decoders-{name}.js"


def live_view(app, docname: str, name: str) -> str:
    srcdir = Path(app.srcdir)
    bundle_path = srcdir / BUNDLE
    if not bundle_path.exists():
        raise ExtensionError(f"{bundle_path} is missing: run scripts/setup.sh (it vendors onnxruntime-web)")
    if not (_decoders_folder(srcdir, name) / "decoders.json").exists():
        raise ExtensionError(f"{_decoders_folder(srcdir, name)}/decoders.json is missing: run the notebook "
                             f"(python -m dvae_core.reproduce --profile {PROFILE} --only {name})")
    static = "../" * docname.count("/") + "_static/"
    return (f'<div class="dvae-live-decoder" data-state="loading">Loading the decoders and onnxruntime-web '
            f'(about 6 MB)…</div>\n'
            f'<script src="{static}onnxruntime-web/ort-wasm.gz.base64.js"></script>\n'
            f'<script src="{static}{_static_file(name)}"></script>\n'
            f'<script src="{static}live_decoder.js"></script>\n'
            f'<script type="module">\n{module_script(bundle_path.read_text(encoding="utf8"))}</script>\n')


def replace_outputs(app, doctree) -> None:
    docname = app.env.docname
    cells = [n for n in doctree.findall(nodes.container) if f"tag_{TAG}" in n.get("classes", [])]
    if not cells:
        return
    name = docname.rsplit("/", 1)[-1]
    for cell in cells:
        cell += nodes.container("", nodes.raw("", live_view(app, docname, name), format="html"),
                                classes=["cell_output", "live-decoder-output"])
    pages = getattr(app.env, "dvae_live_decoder_pages", set())
    pages.add(name)
    app.env.dvae_live_decoder_pages = pages


def merge(app, env, docnames, other) -> None:
    env.dvae_live_decoder_pages = getattr(env, "dvae_live_decoder_pages", set()) | getattr(
        other, "dvae_live_decoder_pages", set())


def write_decoders(app, exception) -> None:
    """Each live page's decoders as a classic script in ``_static/`` (the page may not fetch JSON)."""
    if exception is not None or app.builder.format != "html":
        return
    from dvae_core.browser import read_live_decoders

    for name in sorted(getattr(app.env, "dvae_live_decoder_pages", set())):
        description = read_live_decoders(_decoders_folder(Path(app.srcdir), name))
        target = Path(app.outdir) / "_static" / _static_file(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("window.DVAE_LIVE_DECODERS = " + json.dumps(description) + ";\n", encoding="utf8")


def setup(app):
    # live_decoder.js and its stylesheet rules are in book/_ext/static, which notebook_pages adds to the build
    app.connect("doctree-read", replace_outputs)
    app.connect("env-merge-info", merge)
    app.connect("build-finished", write_decoders)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
