# The two entry points (see README): `make book` and `make test`. Both set up a fresh machine first.
PY := .venv/bin/python
PROFILE ?= preview

.PHONY: setup book reproduce build-book test smoke-notebooks
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
