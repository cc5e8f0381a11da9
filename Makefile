# The two entry points (see README): `make book` and `make test`. Both set up a fresh machine first.
PY := .venv/bin/python
PROFILE ?= preview

.PHONY: setup book reproduce build-book test test-fast sync-notebooks smoke-notebooks
setup:
	bash scripts/setup.sh

# Main job: reproduce every notebook under PROFILE (default preview), then build the book.
book: setup
	$(PY) -m dvae_core.reproduce --profile $(PROFILE)
	.venv/bin/jupyter-book build . --warningiserror --keep-going

reproduce: setup
	$(PY) -m dvae_core.reproduce --profile $(PROFILE)

build-book: setup
	.venv/bin/jupyter-book build . --warningiserror --keep-going

# All tests: unit tests, the book build, and every notebook under nbval in the smoke profile
# (outputs of cells tagged nbval-check-output are compared with the committed ones).
test: setup
	rm -rf _build/nbval
	$(PY) scripts/smoke_notebooks.py _build/nbval
	$(PY) -m pytest tests _build/nbval --nbval-lax --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:randomly

# The unit tests alone (no book build, no browser, no notebooks): about 2 minutes on 2 cores.
test-fast: setup
	$(PY) -m pytest tests -m "not slow" -p no:randomly

# After editing a notebook's source notebooks/<name>.md: carry it into notebooks/<name>.ipynb (the outputs of
# unchanged cells are kept), then re-run the notebook with `python -m dvae_core.reproduce --only <name>`.
sync-notebooks: setup
	.venv/bin/jupytext --sync notebooks/*.md
