#!/usr/bin/env bash
# Vendor the browser JavaScript the book needs, so the built site reads offline.
#
#   scripts/vendor_js.sh            # (re)populate book/vendor/ from package-lock.json
#
# `npm ci` installs the exact versions pinned in package.json / package-lock.json
# into node_modules/ (gitignored); only the files the site loads are then copied
# into book/vendor/ (gitignored), which _config.yml lists in html_static_path, so
# Sphinx copies them into _build/html/_static/:
#
#   book/vendor/mathjax/tex-mml-chtml.js         MathJax 3 (sphinx mathjax_path) + the
#   book/vendor/mathjax/{input,output,ui,a11y,sre}/   components it loads lazily (CHTML
#                                                     fonts, TeX extensions, menu, a11y)
#   book/vendor/requirejs/require.js             AMD loader needed by embed-amd.js
#   book/vendor/jupyter-widgets/embed-amd.js     ipywidgets 8 HTML manager (+ its fonts)
#   book/vendor/onnxruntime-web/                 onnxruntime-web's wasm-only ES bundle (the explorer
#                                                page inlines it: file:// pages may not import modules)
#                                                and its WebAssembly binary, gzipped and base64-encoded
#                                                in a classic script (file:// pages may not fetch it)
#
# Needs node + npm and access to the npm registry (only when node_modules is absent
# or stale). Idempotent; re-running replaces book/vendor/ wholesale.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

command -v npm >/dev/null || { echo "vendor_js.sh: npm not found on PATH" >&2; exit 1; }

npm ci --ignore-scripts --no-audit --no-fund --loglevel=error

NM="$ROOT/node_modules"
OUT="$ROOT/book/vendor"
TMP="$(mktemp -d "$ROOT/book/.vendor.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

# --- MathJax 3 ------------------------------------------------------------------
# The combined component referenced by mathjax_path plus everything it may load at
# run time relative to its own URL ([mathjax]/...): CHTML fonts, autoloaded TeX
# extensions (\color, \cancel, ...), the context menu and its accessibility parts.
MJ="$NM/mathjax/es5"
mkdir -p "$TMP/mathjax/output"
cp "$MJ/tex-mml-chtml.js" "$TMP/mathjax/"
cp -r "$MJ/input" "$MJ/ui" "$MJ/a11y" "$MJ/sre" "$TMP/mathjax/"
cp -r "$MJ/output/chtml" "$MJ/output/chtml.js" "$TMP/mathjax/output/"
cp "$NM/mathjax/LICENSE" "$TMP/mathjax/LICENSE"

# --- RequireJS ------------------------------------------------------------------
mkdir -p "$TMP/requirejs"
cp "$NM/requirejs/require.js" "$TMP/requirejs/"
# requirejs ships its license only in the header of require.js (MIT).

# --- Jupyter widgets HTML manager (ipywidgets 8 <-> @jupyter-widgets/html-manager 1.x)
# embed-amd.js bundles @jupyter-widgets/{base,controls,output} and injects its CSS;
# the font files (Font Awesome) are fetched relative to the script's own URL.
HM="$NM/@jupyter-widgets/html-manager"
mkdir -p "$TMP/jupyter-widgets"
cp "$HM/dist/embed-amd.js" "$TMP/jupyter-widgets/"
find "$HM/dist" -maxdepth 1 -type f \
  \( -name '*.woff2' -o -name '*.woff' -o -name '*.ttf' -o -name '*.eot' -o -name '*.svg' \) \
  -exec cp {} "$TMP/jupyter-widgets/" \;
cp "$HM/LICENSE" "$TMP/jupyter-widgets/LICENSE" 2>/dev/null || true

# --- onnxruntime-web (the explorer's live decoder, book/_ext/live_decoder.py) ------------
# One thread and no proxy worker: the page is not cross-origin isolated (file://), so the threaded
# binary runs single-threaded; the binary is handed to the runtime as bytes (env.wasm.wasmBinary).
ORT="$NM/onnxruntime-web"
mkdir -p "$TMP/onnxruntime-web"
cp "$ORT/dist/ort.wasm.bundle.min.mjs" "$ORT/package.json" "$TMP/onnxruntime-web/"  # MIT (package.json; no LICENSE file shipped)
node -e '
  const fs = require("fs"), zlib = require("zlib");
  const wasm = zlib.gzipSync(fs.readFileSync(process.argv[1]), {level: 9}).toString("base64");
  fs.writeFileSync(process.argv[2], "window.DVAE_ORT_WASM_GZ_BASE64 = \"" + wasm + "\";\n");
' "$ORT/dist/ort-wasm-simd-threaded.wasm" "$TMP/onnxruntime-web/ort-wasm.gz.base64.js"

# Versions actually vendored, for the record.
node -e '
  const p = (n) => require(process.argv[1] + "/" + n + "/package.json").version;
  console.log(JSON.stringify({
    "mathjax": p("mathjax"),
    "requirejs": p("requirejs"),
    "@jupyter-widgets/html-manager": p("@jupyter-widgets/html-manager"),
    "onnxruntime-web": p("onnxruntime-web"),
  }, null, 2));
' "$NM" > "$TMP/VERSIONS.json"

rm -rf "$OUT"
mv "$TMP" "$OUT"
trap - EXIT
echo "vendor_js.sh: populated $OUT ($(du -sh "$OUT" | cut -f1))"
cat "$OUT/VERSIONS.json"
