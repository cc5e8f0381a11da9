#!/usr/bin/env bash
# Set up a fresh machine for dvae, from the project's own files only:
#   - Debian packages where apt exists and we are root: Fashion-MNIST (the embedded real dataset),
#     node/npm (to vendor the book's browser JS) and chromium (the book's headless browser test);
#   - a virtual environment .venv with requirements.txt and dvae_core (editable);
#   - book/vendor/ (MathJax, widgets) from the npm registry.
# Idempotent and quick when nothing changed (a stamp records what was installed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  need=()
  [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || need+=(dataset-fashion-mnist)
  command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
  # headless browser for tests/test_book.py's offline rendering checks (Debian's build; no browser downloads)
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  if [ ${#need[@]} -gt 0 ]; then
    echo "setup: apt-get install ${need[*]}" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
fi

stamp=.venv/.dvae-installed
want="$(cat requirements.txt pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
  echo "$want" > "$stamp"
fi

lock_hash="$(sha256sum package-lock.json | cut -c1-16)"
if [ ! -f book/vendor/.stamp ] || [ "$(cat book/vendor/.stamp)" != "$lock_hash" ]; then
  bash scripts/vendor_js.sh
  echo "$lock_hash" > book/vendor/.stamp
fi
