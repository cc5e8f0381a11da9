"""Claims: what a paper says, what we measured, and a verdict computed from the numbers.

Every notebook ends by writing its claims to ``results/<profile>/<notebook>.json`` as a list of
records (:class:`Claim`'s fields, plus ``profile``, ``notebook`` and ``seed_offset``).
Verdicts are never typed in: they come from the rules of :mod:`dvae_core.rules`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np

from dvae_core.infra import REPO_ROOT, atomic_write_text
from dvae_core.rules import CHECK_VERDICTS, GATE_CHECKS, VERDICTS, Gate, Outcome

RESULTS_DIR = REPO_ROOT / "results"
Kind = Literal["reproduction", "check"]


@dataclass
class Claim:
    """One claim of a paper, what we measured, and the verdict its rule (:mod:`dvae_core.rules`) gave.

    ``kind`` is ``"reproduction"`` (an experiment of the paper, re-run) or ``"check"`` (a metric's
    behaviour on constructed codes: *passed* / *failed*, counted apart). ``reason`` says why a verdict is
    inconclusive, ``explanation`` gives the verdict's numbers in a sentence, ``test`` the test's numbers,
    ``power`` the replicates an underpowered claim needs and their cost, ``gate`` how many runs passed
    their learning gate, ``budget`` the training images per run against the paper's, ``seeds`` the
    training seeds. :meth:`decided` fills the rule's fields from an :class:`~dvae_core.rules.Outcome`.
    """
    id: str
    paper: str
    claim: str
    metric: str
    paper_value: Any
    ours: Any
    verdict: str
    rule: str
    kind: str = "reproduction"
    reason: str | None = None
    explanation: str = ""
    test: dict | None = None
    power: dict | None = None
    gate: dict | None = None
    budget: dict | None = None
    seeds: list | None = None

    def __post_init__(self):
        allowed = VERDICTS if self.kind == "reproduction" else CHECK_VERDICTS
        if self.kind not in ("reproduction", "check"):
            raise ValueError(f"kind must be 'reproduction' or 'check', got {self.kind!r}")
        if self.verdict not in allowed:
            raise ValueError(f"a {self.kind}'s verdict must be one of {allowed}, got {self.verdict!r}")
        if self.verdict == "inconclusive" and not self.reason:
            raise ValueError(f"claim {self.id}: an inconclusive verdict needs a reason")

    @classmethod
    def decided(cls, outcome: Outcome, **fields) -> "Claim":
        return cls(**fields, **outcome.fields())


def training_budget(images_per_run: int, paper_images_per_run: int) -> dict[str, float]:
    """Training images each run saw, against the paper's (steps × batch size of its setting)."""
    return {"images_per_run": int(images_per_run), "paper_images_per_run": int(paper_images_per_run),
            "ratio": float(f"{images_per_run / paper_images_per_run:.3g}")}


def gate_summary(gates: Sequence[Gate]) -> dict[str, Any]:
    """How many runs passed their learning gate, and how many failed each check (:data:`GATE_CHECKS`)."""
    failed: dict[str, int] = {}
    for g in gates:
        for check in set(g.failed_checks):
            name = GATE_CHECKS.get(check, check)
            failed[name] = failed.get(name, 0) + 1
    return {"runs": len(gates), "passed": sum(g.passed for g in gates), "collapsed": sum(g.collapsed for g in gates),
            "failed": dict(sorted(failed.items()))}


def results_path(profile: str, notebook: str) -> Path:
    return RESULTS_DIR / profile / f"{notebook}.json"


def code_version() -> str:
    """The commit of the code that computed a result, ``+changes`` when the work tree differed from it,
    or ``unknown`` outside a git checkout."""
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()

    try:
        commit = git("rev-parse", "--short=12", "HEAD")
        # library and notebook sources only: the results a run is writing are not what produced it
        dirty = git("status", "--porcelain", "--", "dvae_core", "notebooks/*.md")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+changes" if dirty else "")


def write_claims(claims: Sequence[Claim], profile: str, notebook: str, extra: dict | None = None,
                 seed_offset: int = 0) -> Path:
    """Write one notebook's claims atomically; returns the path. ``seed_offset`` is the notebook's
    ``seed`` parameter (every training seed shifted by it); ``code`` the commit that computed them."""
    code = code_version()
    records = [{**asdict(c), "profile": profile, "notebook": notebook, "seed_offset": int(seed_offset),
                "code": code} for c in claims]
    payload = {"notebook": notebook, "profile": profile, "seed_offset": int(seed_offset), "code": code,
               "claims": records, **(extra or {})}
    path = results_path(profile, notebook)
    atomic_write_text(path, json.dumps(payload, indent=1, default=_jsonable) + "\n")
    return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to a results file")
