"""The book's verdict rules: one set, fixed before the runs, the same for every claim.

Every reproduction claim is decided by one of the functions below, at one-sided level
:data:`ALPHA`, and each returns an :class:`Outcome` (verdict, the rule in words, the reason for an
inconclusive verdict, the test's numbers, and for an underpowered claim the replicates it would need):

- :func:`paired` — arms paired by seed (same initialisation, same data stream): an exact Wilcoxon
  signed-rank test of the per-seed differences. :func:`one_sample` is the same test on any per-replicate
  statistic (a difference of differences, a per-run correlation, a per-seed curve gap).
- :func:`non_inferior` — "A is no worse than B": the same test of the differences shifted by a margin.
- :func:`independent` — groups that nothing pairs: an exact Mann–Whitney test.
- :func:`trend` — "y falls (or rises) with x": an exact permutation test of Spearman's ρ.
- :func:`measured_difference` — one model against another on the same evaluation draws, where the only
  replicate is the evaluation sample: a z-test of a difference against its standard error.
- :func:`curve_gaps` — per-seed gaps between two curves, for :func:`one_sample`; a curve claim needs at
  least :data:`MIN_REPLICAS` replicas per cell.

The three verdicts mean the same everywhere:

- *reproduced*: the claimed direction is significant, p < α;
- *not reproduced*: evidence **against** the claim, from runs that passed their learning gate: the
  reverse direction is significant, or the effect is significantly smaller than the claim's stated
  minimal effect (one-sided test of effect < minimal effect, p < α);
  When the claimed direction is significant and the effect is also significantly below the minimal
  effect, the claimed direction decides (*reproduced*) and the record keeps both p-values;
- *inconclusive*: everything else, with a reason: ``underpowered`` (with the replicates needed at the
  observed effect and spread, and their cost), ``too few replicas``, ``under-trained`` or ``collapsed``
  (the learning gate left too few replicates).

A run enters a test only if it passes its *learning gate* (:func:`learning_gate`): its score beats the
untrained model's (same code, same draws), its reconstruction beats the mean-image baseline, its KL is at
least :data:`MIN_KL_NATS` (no posterior collapse), a generator's samples vary. A pair is dropped when
either of its runs fails; the drops are counted in the claim's record.

Checks of a metric on constructed codes are not reproductions: :func:`check` gives them *passed* or
*failed*, and the scorecard counts them apart.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

import numpy as np
from scipy.stats import norm, rankdata

ALPHA = 0.05                 # one-sided, every claim in the book
POWER = 0.8                  # the power the "replicates needed" plan for
MIN_KL_NATS = 1.0            # below this KL (nats per image) a VAE's posterior has collapsed
MIN_REPLICAS = 3             # replicas per cell a curve claim needs
MIN_SAMPLE_STD = 0.01        # a generator whose samples vary less than this (mean per-pixel std) is stuck
WILCOXON_ARE = 3 / math.pi   # rank tests' asymptotic efficiency vs the t-test under normality (≈ 0.955)
EXACT_LIMIT = 200_000        # enumerate a null distribution up to this many arrangements, else approximate

Verdict = Literal["reproduced", "not reproduced", "inconclusive"]
CheckVerdict = Literal["passed", "failed"]
Reason = Literal["underpowered", "too few replicas", "under-trained", "collapsed"]
VERDICTS: tuple[str, ...] = ("reproduced", "not reproduced", "inconclusive")
CHECK_VERDICTS: tuple[str, ...] = ("passed", "failed")


# ------------------------------------------------------------------------------------------- gates
GATE_CHECKS = {"collapsed": "collapsed", "score": "score not above the untrained model's",
               "reconstruction": "reconstruction not better than the mean image", "samples": "samples do not vary"}


@dataclass(frozen=True)
class Gate:
    """One run's learning gate: ``failures`` names each check it failed; ``collapsed`` is KL < MIN_KL_NATS."""
    failures: tuple[str, ...] = ()
    collapsed: bool = False

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def failed_checks(self) -> tuple[str, ...]:
        """The failures as :data:`GATE_CHECKS` keys (the first word of each failure), for counting."""
        return tuple(f.split(" ")[0] for f in self.failures)


def learning_gate(*, kl: float | None = None, score: float | None = None, untrained_score: float | None = None,
                  recon_nll: float | None = None, mean_image_nll: float | None = None,
                  sample_std: float | None = None, min_kl: float = MIN_KL_NATS,
                  min_sample_std: float = MIN_SAMPLE_STD) -> Gate:
    """The checks that apply to a run (those whose numbers are given), measured with the book's own code:

    - ``score > untrained_score``: the metric beats the same architecture untrained, at the run's seed;
    - ``recon_nll < mean_image_nll``: reconstructions beat predicting the dataset's mean image;
    - ``kl >= min_kl``: the posterior has not collapsed onto the prior;
    - ``sample_std >= min_sample_std``: a generator's samples vary (a GAN that draws one image fails).
    """
    failures = []
    collapsed = kl is not None and not kl >= min_kl
    if collapsed:
        failures.append(f"collapsed (KL {kl:.3g} < {min_kl:g} nats)")
    if score is not None and untrained_score is not None and not score > untrained_score:
        failures.append(f"score {score:.3g} not above the untrained model's {untrained_score:.3g}")
    if recon_nll is not None and mean_image_nll is not None and not recon_nll < mean_image_nll:
        failures.append(f"reconstruction NLL {recon_nll:.4g} not below the mean image's {mean_image_nll:.4g}")
    if sample_std is not None and not sample_std >= min_sample_std:
        failures.append(f"samples do not vary (per-pixel std {sample_std:.3g} < {min_sample_std:g})")
    return Gate(tuple(failures), collapsed)


GATE_RULE = ("a run counts only if it passes its learning gate (score above the untrained model's, reconstruction "
             f"better than the mean image, KL ≥ {MIN_KL_NATS:g} nat, varied samples, as each claim applies); "
             "a pair counts only if both its runs do")


# ------------------------------------------------------------------------------------------- costs
@dataclass(frozen=True)
class Cost:
    """What one more replicate (a pair of runs, one seed's curve, …) costs: measured CPU seconds here
    and an estimate of GPU seconds (:mod:`dvae_core.costs`)."""
    cpu_seconds: float
    gpu_seconds: float


# ------------------------------------------------------------------------------------------- outcome
@dataclass(frozen=True)
class Outcome:
    verdict: str
    rule: str
    reason: str | None = None           # one of Reason, for an inconclusive verdict
    explanation: str = ""               # the verdict in one sentence, with its numbers
    test: dict[str, Any] = field(default_factory=dict)
    power: dict[str, Any] | None = None  # replicates needed, for an underpowered verdict

    def __post_init__(self):
        if self.verdict not in VERDICTS + CHECK_VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS + CHECK_VERDICTS}, got {self.verdict!r}")

    def fields(self) -> dict[str, Any]:
        """The keyword arguments of :class:`dvae_core.claims.Claim` that the rule decides."""
        return {"verdict": self.verdict, "rule": self.rule, "reason": self.reason,
                "explanation": self.explanation, "test": self.test, "power": self.power}


# ------------------------------------------------------------------------------------------- exact tests
def signed_rank_p(d: Sequence[float]) -> float:
    """One-sided p-value of the Wilcoxon signed-rank test that the ``d`` are shifted above 0.

    Exact (all 2ⁿ sign patterns, average ranks for ties, zeros dropped as Wilcoxon did) up to
    :data:`EXACT_LIMIT` patterns, else the normal approximation with a tie correction.
    """
    d = np.asarray(d, float)
    d = d[d != 0]
    n = len(d)
    if n == 0:
        return 1.0
    ranks = rankdata(np.abs(d))
    observed = ranks[d > 0].sum()
    if 2 ** n <= EXACT_LIMIT:
        signs = np.array(list(itertools.product((0.0, 1.0), repeat=n)))
        null = signs @ ranks
        return float(np.mean(null >= observed - 1e-9))
    mean = ranks.sum() / 2
    sd = math.sqrt((ranks ** 2).sum() / 4)
    return float(norm.sf((observed - mean - 0.5) / sd))


def rank_sum_p(a: Sequence[float], b: Sequence[float]) -> float:
    """One-sided p-value of the Mann–Whitney test that ``a`` is shifted above ``b``: exact over all
    C(n_a + n_b, n_a) splits (average ranks for ties) up to :data:`EXACT_LIMIT`, else normal."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) == 0 or len(b) == 0:
        return 1.0
    ranks = rankdata(np.concatenate([a, b]))
    observed = ranks[: len(a)].sum()
    total = len(a) + len(b)
    if math.comb(total, len(a)) <= EXACT_LIMIT:
        null = np.array([ranks[list(c)].sum() for c in itertools.combinations(range(total), len(a))])
        return float(np.mean(null >= observed - 1e-9))
    mean = len(a) * (total + 1) / 2
    sd = math.sqrt(len(a) * len(b) / total * ranks.var())
    return float(norm.sf((observed - mean - 0.5) / sd)) if sd > 0 else 1.0


def spearman_p(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Spearman's ρ and the one-sided p-value that ρ > 0, exact over all n! orderings of y up to
    :data:`EXACT_LIMIT` (n ≤ 8), else 100,000 seeded random orderings."""
    rx, ry = rankdata(x), rankdata(y)
    n = len(rx)
    if n < 3 or np.ptp(rx) == 0 or np.ptp(ry) == 0:
        return float("nan"), 1.0

    def rho(r):
        return float(np.corrcoef(rx, r)[0, 1])

    observed = rho(ry)
    if math.factorial(n) <= EXACT_LIMIT:
        null = np.array([rho(ry[list(perm)]) for perm in itertools.permutations(range(n))])
    else:
        rng = np.random.default_rng(0)
        null = np.array([rho(rng.permutation(ry)) for _ in range(100_000)])
    return observed, float(np.mean(null >= observed - 1e-12))


def smallest_signed_rank_p(n: int) -> float:
    """The smallest p-value an exact one-sided signed-rank test of n replicates can give: 2⁻ⁿ."""
    return 2.0 ** -n


def min_replicates(alpha: float = ALPHA) -> int:
    """The fewest replicates with which an exact one-sided signed-rank test can reach p < alpha."""
    return math.ceil(math.log2(1 / alpha) + 1e-12)


# ------------------------------------------------------------------------------------------- planning
def replicates_needed(mean: float, sd: float, target: float = 0.0, alpha: float = ALPHA, power: float = POWER,
                      efficiency: float = WILCOXON_ARE, groups: int = 1) -> int | None:
    """Replicates (per group) at which a one-sided test detects a true mean ``mean`` away from ``target``
    with probability ``power``, if the spread is ``sd``: the normal-theory n divided by the rank test's
    efficiency, and never below :func:`min_replicates`. None when ``mean`` equals ``target``."""
    gap = abs(mean - target)
    floor = min_replicates(alpha)
    if not np.isfinite(gap) or gap == 0:
        return None
    if not np.isfinite(sd) or sd == 0:
        return floor
    n = groups * ((norm.ppf(1 - alpha) + norm.ppf(power)) * sd / gap) ** 2 / efficiency
    return max(floor, math.ceil(n))


def _plan(mean: float, sd: float, min_effect: float, have: int, cost: Cost | None, unit: str,
          groups: int = 1) -> dict[str, Any]:
    """The replicates that would decide the claim at the observed effect: towards *reproduced* if the
    effect is in the claimed direction, else towards *not reproduced* (effect below ``min_effect``)."""
    options = []
    if mean > 0:
        options.append(("reproduced", replicates_needed(mean, sd, 0.0, groups=groups)))
    if mean < min_effect:
        options.append(("not reproduced", replicates_needed(mean, sd, min_effect, groups=groups)))
    options = [(t, n) for t, n in options if n is not None]
    if not options:
        return {"needed": None, "towards": None, "unit": unit, "have": have,
                "note": "no spread or effect to plan from"}
    towards, needed = min(options, key=lambda o: o[1])
    plan = {"needed": needed, "towards": towards, "unit": unit, "have": have,
            "assumes": {"effect": _round(mean), "sd": _round(sd), "power": POWER, "alpha": ALPHA}}
    _price(plan, cost)
    return plan


def _price(plan: dict[str, Any], cost: Cost | None) -> None:
    """Add to ``plan`` the replicates it needs beyond those it has, and what they cost."""
    if cost is None or not plan.get("needed"):
        return
    extra = max(0, plan["needed"] - plan["have"])
    plan.update(more=extra, cpu_hours=round(extra * cost.cpu_seconds / 3600, 2),
                gpu_minutes=round(extra * cost.gpu_seconds / 60, 1))


def _round(v: float, digits: int = 4) -> float | None:
    """A number for the record: 4 significant digits, None (JSON null) when not finite."""
    return float(f"{v:.{digits}g}") if np.isfinite(v) else None


# ------------------------------------------------------------------------------------------- rules
def _rule_text(test: str, min_effect: float, unit: str, gated: bool) -> str:
    text = (f"{test}, one-sided α = {ALPHA:g}: reproduced if the claimed direction is significant; not reproduced "
            f"if the reverse direction is, or if the effect is significantly below the minimal effect "
            f"{min_effect:g}{(' ' + unit) if unit else ''}; inconclusive otherwise")
    return text + ("; " + GATE_RULE if gated else "")


def _gate_mask(n: int, gates: Sequence[Gate] | None) -> tuple[np.ndarray, int, int]:
    if gates is None:
        return np.ones(n, bool), 0, 0
    if len(gates) != n:
        raise ValueError(f"{len(gates)} gates for {n} replicates")
    keep = np.array([g.passed for g in gates], bool)
    collapsed = sum(1 for g in gates if not g.passed and g.collapsed)
    return keep, int((~keep).sum()) - collapsed, collapsed


def one_sample(d: Sequence[float], min_effect: float, *, gates: Sequence[Gate] | None = None,
               cost: Cost | None = None, unit: str = "", replicate: str = "seed",
               test_name: str = "exact Wilcoxon signed-rank test over seeds") -> Outcome:
    """The claim is "the replicates' statistic ``d`` is positive" (orient ``d`` so the claim is > 0).

    ``min_effect`` is the smallest effect the claim means (in ``d``'s units, ≥ 0): an effect significantly
    below it is evidence against the claim. ``gates`` (one per replicate) drop the replicates that failed.
    """
    d_all = np.asarray(d, float)
    keep, dropped_gate, dropped_collapsed = _gate_mask(len(d_all), gates)
    keep &= np.isfinite(d_all)
    d = d_all[keep]
    n = len(d)
    rule = _rule_text(test_name, min_effect, unit, gates is not None)
    test: dict[str, Any] = {"test": test_name, "alpha": ALPHA, "n": n, "replicate": replicate,
                            "dropped_by_gate": dropped_gate, "dropped_collapsed": dropped_collapsed,
                            "min_effect": min_effect}
    if n == 0:
        reason = "collapsed" if dropped_collapsed >= dropped_gate and dropped_collapsed else "under-trained"
        return Outcome("inconclusive", rule, reason, f"no {replicate} passed the learning gate", test)
    mean = float(d.mean())
    sd = float(d.std(ddof=1)) if n > 1 else float("nan")
    p_claim, p_reverse = signed_rank_p(d), signed_rank_p(-d)
    p_below = signed_rank_p(min_effect - d) if min_effect > 0 else p_reverse
    test.update({"mean_effect": _round(mean), "median_effect": _round(float(np.median(d))),
                 "sd": _round(sd), "positive": int((d > 0).sum()),
                 "p_claim": _round(p_claim), "p_reverse": _round(p_reverse), "p_below_min_effect": _round(p_below),
                 "smallest_p": _round(smallest_signed_rank_p(n))})
    return _decide(p_claim, p_reverse, p_below, mean, sd, min_effect, n, dropped_gate, dropped_collapsed,
                   rule, test, cost, unit, replicate)


def _decide(p_claim, p_reverse, p_below, mean, sd, min_effect, n, dropped_gate, dropped_collapsed, rule, test,
            cost, unit, replicate, groups: int = 1, label: str = "mean effect") -> Outcome:
    effect = f"{label} {mean:+.3g}{(' ' + unit) if unit else ''}"
    if p_claim < ALPHA:
        return Outcome("reproduced", rule, None, f"{effect} over {n} {replicate}s, p = {p_claim:.3g}", test)
    if p_reverse < ALPHA:
        return Outcome("not reproduced", rule, None,
                       f"the reverse is significant: {effect} over {n} {replicate}s, p = {p_reverse:.3g}", test)
    if p_below < ALPHA:
        return Outcome("not reproduced", rule, None,
                       f"the effect is below the minimal effect {min_effect:g}: {effect} over {n} {replicate}s, "
                       f"p = {p_below:.3g}", test)
    plan = _plan(mean, sd, min_effect, n, cost, f"{replicate}s" + (" per group" if groups > 1 else ""), groups)
    dropped = dropped_gate + dropped_collapsed
    if dropped and n < min_replicates():
        reason = "collapsed" if dropped_collapsed >= dropped_gate else "under-trained"
        why = f"{dropped} {replicate}(s) failed the learning gate, leaving {n}"
    else:
        reason = "underpowered"
        why = f"p = {p_claim:.3g} with {n} {replicate}s"
        if n < min_replicates():
            why += f" (the smallest p {n} {replicate}s can give is {smallest_signed_rank_p(n):.3g})"
    if plan.get("needed"):
        why += f"; ≈ {plan['needed']} {plan['unit']} would decide it (towards {plan['towards']})"
        if "cpu_hours" in plan:
            why += f", {plan['cpu_hours']:g} more CPU-hours here or ≈ {plan['gpu_minutes']:g} GPU-minutes"
    return Outcome("inconclusive", rule, reason, f"{effect}; {why}", test, plan)


def paired(a: Sequence[float], b: Sequence[float], *, higher_is_better: bool, min_effect: float,
           gates_a: Sequence[Gate] | None = None, gates_b: Sequence[Gate] | None = None,
           cost: Cost | None = None, unit: str = "") -> Outcome:
    """"A beats B", arms paired by seed (``a[i]`` and ``b[i]`` share seed i): :func:`one_sample` on the
    per-seed differences, oriented so that the claim is > 0. A pair counts if both runs pass their gates."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape:
        raise ValueError(f"paired arms need one value per seed each, got {len(a)} and {len(b)}")
    sign = 1.0 if higher_is_better else -1.0
    gates = _pair_gates(gates_a, gates_b, len(a))
    return one_sample(sign * (a - b), min_effect, gates=gates, cost=cost, unit=unit, replicate="seed pair",
                      test_name="exact Wilcoxon signed-rank test of the per-seed differences")


def _pair_gates(gates_a, gates_b, n) -> list[Gate] | None:
    if gates_a is None and gates_b is None:
        return None
    gates_a = list(gates_a) if gates_a is not None else [Gate()] * n
    gates_b = list(gates_b) if gates_b is not None else [Gate()] * n
    return [Gate(ga.failures + gb.failures, ga.collapsed or gb.collapsed) for ga, gb in zip(gates_a, gates_b)]


def non_inferior(a: Sequence[float], b: Sequence[float], *, higher_is_better: bool, margin: float,
                 gates_a: Sequence[Gate] | None = None, gates_b: Sequence[Gate] | None = None,
                 cost: Cost | None = None, unit: str = "") -> Outcome:
    """"A is no worse than B" (by more than ``margin``), paired by seed: reproduced if the per-seed
    differences are significantly above −margin; not reproduced if significantly below it."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    sign = 1.0 if higher_is_better else -1.0
    gates = _pair_gates(gates_a, gates_b, len(a))
    keep, dropped_gate, dropped_collapsed = _gate_mask(len(a), gates)
    d = (sign * (a - b))[keep]
    n = len(d)
    name = "exact Wilcoxon signed-rank test of the per-seed differences against the non-inferiority margin"
    rule = (f"{name}, one-sided α = {ALPHA:g}: reproduced if A is significantly better than (B − {margin:g}"
            f"{(' ' + unit) if unit else ''}); not reproduced if significantly worse than that; inconclusive "
            f"otherwise" + ("; " + GATE_RULE if gates is not None else ""))
    test: dict[str, Any] = {"test": name, "alpha": ALPHA, "n": n, "replicate": "seed pair", "margin": margin,
                            "dropped_by_gate": dropped_gate, "dropped_collapsed": dropped_collapsed}
    if n == 0:
        return Outcome("inconclusive", rule, "collapsed" if dropped_collapsed else "under-trained",
                       "no seed pair passed the learning gate", test)
    shifted = d + margin
    mean = float(d.mean())
    sd = float(d.std(ddof=1)) if n > 1 else float("nan")
    p_claim, p_reverse = signed_rank_p(shifted), signed_rank_p(-shifted)
    test.update({"mean_effect": _round(mean), "sd": _round(sd), "p_claim": _round(p_claim),
                 "p_reverse": _round(p_reverse), "smallest_p": _round(smallest_signed_rank_p(n))})
    # planning and wording on the shifted scale: "effect" there is the distance above −margin
    return _decide(p_claim, p_reverse, 1.0, mean + margin, sd, 0.0, n, dropped_gate, dropped_collapsed, rule, test,
                   cost, unit, "seed pair", label=f"mean distance above −{margin:g}")


def independent(a: Sequence[float], b: Sequence[float], *, higher_is_better: bool, min_effect: float,
                gates_a: Sequence[Gate] | None = None, gates_b: Sequence[Gate] | None = None,
                cost: Cost | None = None, unit: str = "") -> Outcome:
    """"A beats B" where nothing pairs the runs: exact Mann–Whitney tests of A vs B (claim), B vs A
    (reverse) and A − min_effect vs B (effect below the minimal one)."""
    sign = 1.0 if higher_is_better else -1.0
    a_all, b_all = sign * np.asarray(a, float), sign * np.asarray(b, float)
    keep_a, ga, ca = _gate_mask(len(a_all), gates_a)
    keep_b, gb, cb = _gate_mask(len(b_all), gates_b)
    a, b = a_all[keep_a], b_all[keep_b]
    name = "exact Mann–Whitney U test"
    rule = _rule_text(name, min_effect, unit, gates_a is not None or gates_b is not None)
    test: dict[str, Any] = {"test": name, "alpha": ALPHA, "n": [len(a), len(b)], "replicate": "run",
                            "dropped_by_gate": ga + gb, "dropped_collapsed": ca + cb, "min_effect": min_effect}
    if len(a) == 0 or len(b) == 0:
        # the reason is the empty arm's: why none of *its* runs passed
        g, c = (ga, ca) if len(a) == 0 else (gb, cb)
        return Outcome("inconclusive", rule, "collapsed" if c > g else "under-trained",
                       "an arm has no run that passed the learning gate", test)
    effect = float(np.median(a) - np.median(b))
    sd = float(np.sqrt((np.var(a, ddof=1) + np.var(b, ddof=1)) / 2)) if min(len(a), len(b)) > 1 else float("nan")
    p_claim, p_reverse = rank_sum_p(a, b), rank_sum_p(b, a)
    p_below = rank_sum_p(b, a - min_effect) if min_effect > 0 else p_reverse
    test.update({"median_a": _round(sign * float(np.median(a))), "median_b": _round(sign * float(np.median(b))),
                 "median_effect": _round(effect), "sd": _round(sd), "p_claim": _round(p_claim),
                 "p_reverse": _round(p_reverse), "p_below_min_effect": _round(p_below),
                 "smallest_p": _round(1 / math.comb(len(a) + len(b), len(a)))})
    n = min(len(a), len(b))
    return _decide(p_claim, p_reverse, p_below, effect, sd, min_effect, n, ga + gb, ca + cb, rule, test, cost, unit,
                   "run", groups=2, label="difference of medians")


def trend(x: Sequence[float], y: Sequence[float], *, decreasing: bool, cost: Cost | None = None,
          point: str = "point") -> Outcome:
    """"y falls (``decreasing``) or rises with x": an exact permutation test of Spearman's ρ (no rounding
    onto a threshold: the p-value decides). Not reproduced if the reverse trend is significant."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    sign = -1.0 if decreasing else 1.0
    rho, p_claim = spearman_p(x, sign * y)
    _, p_reverse = spearman_p(x, -sign * y)
    n = len(x)
    name = "exact permutation test of Spearman's ρ"
    rule = (f"{name}, one-sided α = {ALPHA:g}: reproduced if the claimed trend is significant; not reproduced if "
            f"the reverse trend is; inconclusive otherwise")
    test = {"test": name, "alpha": ALPHA, "n": n, "replicate": point, "spearman_rho": _round(sign * rho),
            "p_claim": _round(p_claim), "p_reverse": _round(p_reverse),
            "smallest_p": _round(1 / math.factorial(n)) if n <= 20 else 0.0}
    text = f"Spearman ρ = {sign * rho:+.3g} over {n} {point}s"
    if p_claim < ALPHA:
        return Outcome("reproduced", rule, None, f"{text}, p = {p_claim:.3g}", test)
    if p_reverse < ALPHA:
        return Outcome("not reproduced", rule, None, f"reverse trend: {text}, p = {p_reverse:.3g}", test)
    plan: dict[str, Any] = {"needed": None, "towards": None, "unit": f"{point}s", "have": n}
    if np.isfinite(rho) and 0 < rho < 1:
        # Fisher's z: n ≈ ((z_α + z_β) / atanh ρ)² + 3, with the rank correlation's 1.06 variance factor
        needed = math.ceil(1.06 * ((norm.ppf(1 - ALPHA) + norm.ppf(POWER)) / math.atanh(rho)) ** 2 + 3)
        plan.update(needed=max(needed, n + 1), towards="reproduced", assumes={"rho": _round(rho), "power": POWER})
        _price(plan, cost)
    why = f"{text}, p = {p_claim:.3g} (the smallest p {n} {point}s can give is {test['smallest_p']:.3g})"
    if plan["needed"]:
        why += f"; ≈ {plan['needed']} {point}s would decide it"
        if "cpu_hours" in plan:
            why += f", {plan['cpu_hours']:g} more CPU-hours here or ≈ {plan['gpu_minutes']:g} GPU-minutes"
    return Outcome("inconclusive", rule, "underpowered", why, test, plan)


def measured_difference(difference: float, std_error: float, *, min_effect: float, unit: str = "",
                        replicate: str = "evaluation draws") -> Outcome:
    """"A beats B by ``difference`` (> 0 is the claim's way)" where the only replicate is the evaluation
    sample (one trained model per arm): z = difference / std_error against the normal quantile at α."""
    z_crit = float(norm.ppf(1 - ALPHA))
    name = "z-test of the difference against its evaluation standard error"
    rule = (f"{name}, one-sided α = {ALPHA:g} (|z| > {z_crit:.3g}): reproduced if the difference is significantly "
            f"in the claimed direction; not reproduced if significantly reversed or below the minimal effect "
            f"{min_effect:g}{(' ' + unit) if unit else ''}; inconclusive otherwise. The spread is the evaluation's "
            f"only: one training seed per model")
    se = float(std_error)
    if not (np.isfinite(se) and np.isfinite(difference)):
        test = {"test": name, "alpha": ALPHA, "replicate": replicate, "difference": _round(difference),
                "std_error": None, "min_effect": min_effect}
        return Outcome("inconclusive", rule, "too few replicas",
                       f"difference {difference:+.3g} with no standard error (fewer than 2 {replicate})", test)
    z = difference / se if se > 0 else math.copysign(math.inf, difference) if difference else 0.0
    z_below = (difference - min_effect) / se if se > 0 else (-math.inf if difference < min_effect else math.inf)
    test = {"test": name, "alpha": ALPHA, "replicate": replicate, "difference": _round(difference),
            "std_error": _round(se), "z": _round(z), "min_effect": min_effect}
    text = f"difference {difference:+.3g}{(' ' + unit) if unit else ''} ± {se:.2g}"
    if z > z_crit:
        return Outcome("reproduced", rule, None, f"{text} (z = {z:.3g})", test)
    if z < -z_crit or (min_effect > 0 and z_below < -z_crit):
        return Outcome("not reproduced", rule, None, f"{text} (z = {z:.3g})", test)
    return Outcome("inconclusive", rule, "underpowered", f"{text}: within {z_crit:.3g} standard errors", test)


def check(passed: bool, rule: str, explanation: str = "", test: dict | None = None) -> Outcome:
    """A check of a metric's behaviour on constructed codes: *passed* or *failed*, counted apart."""
    return Outcome("passed" if passed else "failed", rule, None, explanation, test or {})


# ------------------------------------------------------------------------------------------- curves
def curve_gap(xs_better, ys_better, xs_worse, ys_worse, sign: float = 1.0, points: int = 50) -> float:
    """Mean of sign·(y_better(x) − y_worse(x)) over the x range both piecewise-linear curves cover
    (each sorted by x); NaN when either curve has fewer than 2 points or the ranges do not overlap."""
    curves = []
    for xs, ys in ((xs_better, ys_better), (xs_worse, ys_worse)):
        xs, ys = np.asarray(xs, float), np.asarray(ys, float)
        order = np.argsort(xs)
        curves.append((xs[order], ys[order]))
    (xb, yb), (xw, yw) = curves
    if len(xb) < 2 or len(xw) < 2:
        return float("nan")
    lo, hi = max(xb.min(), xw.min()), min(xb.max(), xw.max())
    if hi <= lo:
        return float("nan")
    grid = np.linspace(lo, hi, points)
    return float(np.mean(sign * (np.interp(grid, xb, yb) - np.interp(grid, xw, yw))))


def curve_gaps(frame, *, group: str, level: str, x: str, y: str, better: str, worse: str, higher_is_better: bool,
               seed: str = "seed", keep=None) -> tuple[dict[Any, float], int]:
    """Per seed, :func:`curve_gap` between ``better``'s and ``worse``'s y-vs-x curves (one point per
    ``level``: a β or γ of the sweep, the same seed's run), and the fewest replicas any (group, level)
    cell has. ``keep`` (a boolean Series over ``frame``) leaves out runs that failed their gate."""
    frame = frame if keep is None else frame[keep]
    sign = 1.0 if higher_is_better else -1.0
    counts = frame.groupby([group, level]).size()
    fewest = int(counts.min()) if len(counts) else 0
    gaps = {}
    for s, runs in frame.groupby(seed):
        b, w = runs[runs[group] == better], runs[runs[group] == worse]
        gaps[s] = curve_gap(b[x], b[y], w[x], w[y], sign)
    return gaps, fewest


def curve(frame, *, group: str, level: str, x: str, y: str, better: str, worse: str, higher_is_better: bool,
          min_effect: float, unit: str = "", seed: str = "seed", keep=None, collapsed=None,
          cost: Cost | None = None) -> Outcome:
    """"``better``'s y-vs-x curve beats ``worse``'s": the per-seed curve gaps (:func:`curve_gaps`) tested by
    :func:`one_sample` (resampling over seeds); inconclusive with fewer than :data:`MIN_REPLICAS` replicas
    in any cell. ``collapsed`` (a boolean Series over ``frame``) marks which gated-out runs collapsed, for
    the reason when the gate leaves no curve."""
    gaps, fewest = curve_gaps(frame, group=group, level=level, x=x, y=y, better=better, worse=worse,
                              higher_is_better=higher_is_better, seed=seed, keep=keep)
    dropped = 0 if keep is None else int((~np.asarray(keep, bool)).sum())
    values = np.array([g for g in gaps.values() if np.isfinite(g)])
    outcome = one_sample(values, min_effect, cost=cost, unit=unit, replicate="seed",
                         test_name="exact Wilcoxon signed-rank test of the per-seed curve gaps")
    test = {**outcome.test, "replicas_per_cell": fewest, "runs_dropped_by_gate": dropped,
            "per_seed_gap": {str(k): _round(v) for k, v in gaps.items()}}
    rule = outcome.rule + f"; a curve needs ≥ {MIN_REPLICAS} replicas per cell; " + \
        "runs that fail their learning gate leave their curve"
    if len(values) == 0 and keep is not None and dropped:
        collapsed_runs = int(np.sum(collapsed)) if collapsed is not None else 0
        reason = "collapsed" if collapsed_runs * 2 > dropped else "under-trained"
        return Outcome("inconclusive", rule, reason,
                       f"{dropped} run(s) failed their learning gate, leaving no curve to compare", test)
    if fewest < MIN_REPLICAS:
        but = "" if outcome.verdict == "inconclusive" else "but only "
        return Outcome("inconclusive", rule, "too few replicas",
                       f"{outcome.explanation}; {but}{fewest} replica(s) in some cell (the rule needs {MIN_REPLICAS})",
                       test, outcome.power)
    return Outcome(outcome.verdict, rule, outcome.reason, outcome.explanation, test, outcome.power)
