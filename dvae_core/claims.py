"""Claims: what a paper says, what we measured, and a verdict computed from the numbers.

Every notebook ends by writing its claims to ``results/<profile>/<notebook>.json`` as a list of
records ``{id, paper, claim, metric, paper_value, ours, verdict, rule, profile, notebook}``.
Verdicts are never typed in: they come from rules such as :func:`compare_groups`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu

from dvae_core.infra import REPO_ROOT, atomic_write_text

VERDICTS = ("reproduced", "not reproduced", "inconclusive")
RESULTS_DIR = REPO_ROOT / "results"


@dataclass
class Claim:
    id: str
    paper: str
    claim: str
    metric: str
    paper_value: Any
    ours: Any
    verdict: str
    rule: str

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")


def compare_groups(ours_better: Sequence[float], baseline: Sequence[float], higher_is_better: bool = True,
                   alpha: float = 0.1) -> tuple[str, dict[str, Any]]:
    """Verdict for "group A beats group B" from per-seed values.

    - ``reproduced``: A's median is better and a one-sided Mann–Whitney U test gives p < alpha;
    - ``not reproduced``: A's median is not better (the claimed ordering fails at our scale);
    - ``inconclusive``: the ordering holds but p ≥ alpha (more seeds needed).
    Returns the verdict and the numbers behind it.
    """
    a, b = np.asarray(ours_better, float), np.asarray(baseline, float)
    if len(a) < 2 or len(b) < 2:
        med_a, med_b = float(np.median(a)), float(np.median(b))
        return "inconclusive", {"median_a": med_a, "median_b": med_b, "p_value": None, "n": [len(a), len(b)]}
    sign = 1.0 if higher_is_better else -1.0
    med_a, med_b = float(np.median(a)), float(np.median(b))
    p = float(mannwhitneyu(sign * a, sign * b, alternative="greater").pvalue)
    if sign * (med_a - med_b) <= 0:
        verdict = "not reproduced"
    else:
        verdict = "reproduced" if p < alpha else "inconclusive"
    return verdict, {"median_a": med_a, "median_b": med_b, "p_value": p, "n": [len(a), len(b)]}


def compare_groups_rule(a_name: str, b_name: str, higher_is_better: bool, alpha: float = 0.1) -> str:
    better = "higher" if higher_is_better else "lower"
    return (f"reproduced if median({a_name}) is {better} than median({b_name}) and a one-sided Mann–Whitney U "
            f"test gives p < {alpha}; not reproduced if the median ordering is reversed or tied; "
            f"inconclusive otherwise")


def curve_gap(frame, group: str, level: str, x: str, y: str, better: str, worse: str, sign: float = 1.0) -> float:
    """Mean of sign·(y_better(x) − y_worse(x)) over the x range both curves cover.

    Each curve joins the per-``level`` means of (x, y) of one ``group`` value (a β or γ sweep of
    one model), sorted by x, piecewise linearly; NaN when the x ranges do not overlap.
    """
    curves = {}
    for name in (better, worse):
        means = frame[frame[group] == name].groupby(level)[[x, y]].mean().sort_values(x)
        curves[name] = (means[x].to_numpy(), means[y].to_numpy())
    (xs_b, ys_b), (xs_w, ys_w) = curves[better], curves[worse]
    lo, hi = max(xs_b.min(), xs_w.min()), min(xs_b.max(), xs_w.max())
    if hi <= lo:
        return float("nan")
    grid = np.linspace(lo, hi, 50)
    return float(np.mean(sign * (np.interp(grid, xs_b, ys_b) - np.interp(grid, xs_w, ys_w))))


def curve_verdict(frame, group: str, level: str, x: str, y: str, better: str, worse: str,
                  higher_is_better: bool, num_boot: int = 1000, level_ci: float = 0.9,
                  seed: int = 0) -> tuple[str, dict[str, float], str]:
    """Verdict for "``better``'s y-vs-x curve beats ``worse``'s": the mean advantage of
    :func:`curve_gap`, with a bootstrap over replicas (rows resampled within each group and level).

    Returns the verdict, the numbers (``advantage`` and ``ci<level>_low``) and the rule in words.
    """
    sign = 1.0 if higher_is_better else -1.0
    observed = curve_gap(frame, group, level, x, y, better, worse, sign)
    rng = np.random.default_rng(seed)
    cells = [g for _, g in frame.groupby([group, level])]
    boots = []
    for _ in range(num_boot):
        sample = pd.concat([g.iloc[rng.integers(0, len(g), len(g))] for g in cells])
        boots.append(curve_gap(sample, group, level, x, y, better, worse, sign))
    low = float(np.nanquantile(boots, (1 - level_ci) / 2)) if np.isfinite(boots).any() else float("nan")
    if not np.isfinite(observed):
        verdict = "inconclusive"
    elif observed <= 0:
        verdict = "not reproduced"
    else:
        verdict = "reproduced" if low > 0 else "inconclusive"
    pct = int(round(level_ci * 100))
    rule = (f"reproduced if the mean advantage is > 0 and the lower end of its {pct} % bootstrap interval "
            f"(replicas resampled) is > 0; not reproduced if the advantage is <= 0; inconclusive otherwise")
    return verdict, {"advantage": observed, f"ci{pct}_low": low}, rule


def results_path(profile: str, notebook: str) -> Path:
    return RESULTS_DIR / profile / f"{notebook}.json"


def write_claims(claims: Sequence[Claim], profile: str, notebook: str, extra: dict | None = None) -> Path:
    """Write one notebook's claims atomically; returns the path."""
    records = [{**asdict(c), "profile": profile, "notebook": notebook} for c in claims]
    payload = {"notebook": notebook, "profile": profile, "claims": records, **(extra or {})}
    path = results_path(profile, notebook)
    atomic_write_text(path, json.dumps(payload, indent=1, default=_jsonable) + "\n")
    return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to a results file")


def claims_frame(claims: Sequence[Claim]):
    """The claims as a pandas DataFrame, for display in a notebook."""
    import pandas as pd

    return pd.DataFrame([{"claim": c.claim, "metric": c.metric, "paper": c.paper_value, "ours": c.ours,
                          "verdict": c.verdict} for c in claims])
