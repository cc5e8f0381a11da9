"""The papers the book reproduces: one package each, and the one registry everything iterates over.

Each paper is a package ``dvae_core.papers.<key>`` whose experiment modules (one per group of notebooks
that share runs) each expose the same names:

- ``PROFILES``: profile name (``smoke`` / ``preview`` / ``paper``) → a frozen dataclass holding *every*
  setting of that experiment that depends on the profile;
- ``profile(name, seed_offset=0)``: that object, with every training seed shifted by ``seed_offset`` (the
  notebooks' ``seed`` parameter) where the experiment trains;
- configs, evaluation, claims and figures under names that say what they build (``fig2_configs``,
  ``evaluate_run``, ``fig2_claims``, ``plot_tradeoff``, …).

The registry below names, for each paper, its package, the citation its claims carry, its chapter page,
the prefix of its notebooks and the experiment module that says which training runs ``dvae_core.bench``
measures (``BENCH_MODELS`` there). ``reproduce`` (scorecard order and grouping), ``bench`` (what to
measure) and the tests (every notebook belongs to a paper, every experiment module keeps the contract)
read it. A new paper is a package under ``dvae_core/papers/``, its notebooks and one line here.

The registry imports no paper package: it names them, and :meth:`Paper.module` imports on demand, so
reading the registry stays cheap and no paper can import another through it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Callable, NamedTuple


@dataclass(frozen=True)
class Paper:
    key: str              # package under dvae_core.papers
    title: str            # the paper's title, as chapter headings give it
    citation: str         # every claim's ``paper`` field
    chapter: str          # the chapter's page (in _toc.yml)
    notebook_prefix: str  # notebooks/<prefix>*.ipynb belong to this paper
    experiments: tuple[str, ...]  # experiment modules (relative to the package); the first holds BENCH_MODELS
    # (notebook, why the paper's numbers and ours are on different scales) where they are: on the claims' cards
    value_notes: tuple[tuple[str, str], ...] = ()

    def module(self, name: str | None = None) -> ModuleType:
        """The paper's package, or one of its experiment modules by name."""
        return importlib.import_module(f"{__name__}.{self.key}" + (f".{name}" if name else ""))

    def lead_module(self) -> ModuleType:
        """The first experiment module: the one that holds ``BENCH_MODELS`` and ``PAPER``."""
        return self.module(self.experiments[0] or None)

    def owns(self, notebook: str) -> bool:
        return notebook.startswith(self.notebook_prefix)


class BenchModel(NamedTuple):
    """One training run ``dvae_core.bench`` measures: its label, where its config comes from (as readers
    would write it), and profile name → that config."""

    label: str
    source: str
    config: Callable[[str], object]


# the paper's numbers and ours on different scales: said on every card of these notebooks' claims
_RAE_FID = ("the paper's FIDs are Inception FIDs on MNIST; ours use the features of a Fashion-MNIST classifier "
            "trained here, on Fashion-MNIST (no Inception weights offline): compare which model or column is "
            "lower, not the values")
_VLAE_NLL = ("the paper's NLLs are on binarised MNIST, ours on binarised Fashion-MNIST, whose NLLs are about "
             "three times larger: compare the differences between models, not the NLLs")

PAPERS: tuple[Paper, ...] = (
    Paper("sbd", "Spatial Broadcast Decoder", "Watters et al. 2019 (Spatial Broadcast Decoder)", "book/sbd",
          "sbd_", ("", "geometry", "explorer")),
    Paper("factorvae", "Disentangling by Factorising", "Kim & Mnih 2018 (FactorVAE)", "book/factorvae",
          "fvae_", ("tradeoff", "metric")),
    Paper("rae", "From Variational to Deterministic Autoencoders", "Ghosh et al. 2020 (RAE)", "book/rae",
          "rae_", ("",), (("rae_table1", _RAE_FID), ("rae_samples", _RAE_FID))),
    Paper("vlae", "Variational Lossy Autoencoder", "Chen et al. 2017 (VLAE)", "book/vlae", "vlae_", ("", "colour"),
          (("vlae_nll_table", _VLAE_NLL),)),
)


def paper(key: str) -> Paper:
    """The registered paper ``key``, with an error that lists the others."""
    for entry in PAPERS:
        if entry.key == key:
            return entry
    raise KeyError(f"unknown paper {key!r}: choose one of {', '.join(p.key for p in PAPERS)}")


def paper_of_notebook(notebook: str) -> Paper | None:
    """The paper a notebook (its file stem) belongs to, by prefix; None for a notebook of no paper."""
    return next((entry for entry in PAPERS if entry.owns(notebook)), None)


def bench_models() -> dict[str, BenchModel]:
    """Every paper's ``BENCH_MODELS``, in registry order."""
    models: dict[str, BenchModel] = {}
    for entry in PAPERS:
        models.update(entry.lead_module().BENCH_MODELS)
    return models
