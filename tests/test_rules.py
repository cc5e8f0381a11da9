"""The verdict rules (dvae_core.rules) on synthetic data with a known effect, and with none.

The calibration tests simulate many experiments: under no effect, *reproduced* and *not reproduced*
must each come out at most at the rate α allows (plus Monte-Carlo slack); under a clear effect the
right verdict must come out nearly always. Every inconclusive verdict must carry a reason.
"""

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import mannwhitneyu, wilcoxon

from dvae_core import rules
from dvae_core.claims import Claim, gate_summary, training_budget
from dvae_core.rules import ALPHA, Cost, Gate, learning_gate

SIMULATIONS = 1000
SLACK = 3 * math.sqrt(ALPHA * (1 - ALPHA) / SIMULATIONS)  # three Monte-Carlo standard errors of a rate α


def rates(outcomes) -> dict[str, float]:
    verdicts = [o.verdict for o in outcomes]
    return {v: verdicts.count(v) / len(verdicts) for v in rules.VERDICTS}


# ------------------------------------------------------------------------------------------- exact tests
def test_signed_rank_matches_scipy_exact():
    rng = np.random.default_rng(0)
    for n in (3, 5, 8, 11):
        d = rng.normal(0.3, 1, n)
        assert rules.signed_rank_p(d) == pytest.approx(wilcoxon(d, alternative="greater", method="exact").pvalue)


def test_signed_rank_smallest_p_is_two_to_minus_n():
    assert rules.signed_rank_p([1, 2, 3]) == pytest.approx(1 / 8)
    assert rules.signed_rank_p([0.1] * 5) == pytest.approx(1 / 32)
    assert rules.min_replicates() == 5  # 2⁻⁵ = 0.031 < 0.05 ≤ 2⁻⁴


def test_rank_sum_matches_scipy_exact():
    rng = np.random.default_rng(1)
    a, b = rng.normal(1, 1, 6), rng.normal(0, 1, 5)
    assert rules.rank_sum_p(a, b) == pytest.approx(mannwhitneyu(a, b, alternative="greater", method="exact").pvalue)


def test_spearman_permutation_on_four_points():
    # ρ = −0.8 on 4 points: 4 of the 24 orderings are at least as decreasing
    rho, p = rules.spearman_p([4, 10, 17, 31], -np.array([9.672, 8.965, 8.451, 8.73]))
    assert rho == pytest.approx(0.8) and p == pytest.approx(4 / 24)


# ------------------------------------------------------------------------------------------- paired
def simulate_paired(effect: float, n: int, min_effect: float = 0.0, seed_sd: float = 1.0, pair_sd: float = 0.5):
    """Each seed shifts both arms alike (seed_sd), the arms differ by ``effect`` plus pair noise."""
    rng = np.random.default_rng(12345)
    outcomes = []
    for _ in range(SIMULATIONS):
        seed_effect = rng.normal(0, seed_sd, n)
        b = seed_effect + rng.normal(0, pair_sd, n)
        a = seed_effect + effect + rng.normal(0, pair_sd, n)
        outcomes.append(rules.paired(a, b, higher_is_better=True, min_effect=min_effect))
    return outcomes


@pytest.mark.parametrize("n", [3, 6, 10])
def test_paired_no_effect_keeps_both_error_rates_at_alpha(n):
    r = rates(simulate_paired(0.0, n))
    assert r["reproduced"] <= ALPHA + SLACK and r["not reproduced"] <= ALPHA + SLACK


def test_paired_effect_at_the_minimal_effect_is_not_called_not_reproduced_too_often():
    r = rates(simulate_paired(0.3, 8, min_effect=0.3))
    assert r["not reproduced"] <= ALPHA + SLACK


def test_paired_clear_effect_reproduces_and_reversed_is_not_reproduced():
    assert rates(simulate_paired(1.5, 8))["reproduced"] > 0.95
    assert rates(simulate_paired(-1.5, 8))["not reproduced"] > 0.95


def test_paired_no_effect_with_many_pairs_is_evidence_against_a_minimal_effect():
    # the claim means at least 0.6 (0.85 sd of a difference); a true zero effect over 20 pairs shows it is smaller
    assert rates(simulate_paired(0.0, 20, min_effect=0.6))["not reproduced"] > 0.8


def test_three_pairs_can_never_reproduce_and_say_why():
    outcome = rules.paired([10, 11, 12], [1, 2, 3], higher_is_better=True, min_effect=0.0, cost=Cost(3600, 60))
    assert outcome.verdict == "inconclusive" and outcome.reason == "underpowered"
    assert outcome.test["smallest_p"] == pytest.approx(0.125)
    assert outcome.power["needed"] == 5 and outcome.power["more"] == 2
    assert outcome.power["cpu_hours"] == 2.0 and outcome.power["gpu_minutes"] == 2.0


def test_pairing_detects_what_an_unpaired_test_cannot():
    # seed-to-seed spread dwarfs a consistent per-pair advantage
    rng = np.random.default_rng(3)
    seed_effect = rng.normal(0, 10, 8)
    a, b = seed_effect + 1 + rng.normal(0, 0.2, 8), seed_effect + rng.normal(0, 0.2, 8)
    assert rules.paired(a, b, higher_is_better=True, min_effect=0.0).verdict == "reproduced"
    assert rules.independent(a, b, higher_is_better=True, min_effect=0.0).verdict == "inconclusive"


def test_lower_is_better_orients_the_difference():
    outcome = rules.paired([1, 2, 3, 4, 5, 6], [2, 3, 4, 5, 6, 7.5], higher_is_better=False, min_effect=0.1)
    assert outcome.verdict == "reproduced" and outcome.test["mean_effect"] > 0


def test_paired_arms_of_different_lengths_are_refused():
    with pytest.raises(ValueError, match="one value per seed"):
        rules.paired([1, 2, 3], [1, 2], higher_is_better=True, min_effect=0.0)


# ------------------------------------------------------------------------------------------- gates
def test_learning_gate_checks_what_it_is_given():
    assert learning_gate(kl=5.0, score=0.1, untrained_score=0.01, recon_nll=100, mean_image_nll=200).passed
    collapsed = learning_gate(kl=0.09, score=0.0, untrained_score=0.3)
    assert collapsed.collapsed and len(collapsed.failures) == 2
    assert not learning_gate(recon_nll=300, mean_image_nll=200).passed
    assert not learning_gate(sample_std=0.0).passed  # a GAN that draws one black image
    assert not learning_gate(kl=float("nan")).passed


def test_collapsed_runs_leave_the_test_and_are_counted():
    good, bad = Gate(), Gate(("collapsed (KL 0.09 < 1 nats)",), collapsed=True)
    a, b = [5, 6, 7, 8, 9, 0], [1, 2, 3, 4, 5, 9]
    outcome = rules.paired(a, b, higher_is_better=True, min_effect=0.0, gates_a=[good] * 5 + [bad])
    assert outcome.test["n"] == 5 and outcome.test["dropped_collapsed"] == 1
    assert outcome.verdict == "reproduced"  # the collapsed pair, reversed, no longer decides
    none_left = rules.paired(a, b, higher_is_better=True, min_effect=0.0, gates_b=[bad] * 6)
    assert none_left.verdict == "inconclusive" and none_left.reason == "collapsed"


def test_a_gate_that_leaves_too_few_pairs_says_under_trained():
    failed = Gate(("score 0.005 not above the untrained model's 0.007",))
    outcome = rules.paired([2, 3, 4, 5, 6, 7], [1, 2, 3, 4, 5, 6], higher_is_better=True, min_effect=0.0,
                           gates_a=[Gate()] * 3 + [failed] * 3)
    assert outcome.verdict == "inconclusive" and outcome.reason == "under-trained"


def test_not_reproduced_needs_gated_runs_only():
    """A reversed effect carried by runs that failed their gate cannot make a "not reproduced"."""
    failed = Gate(("reconstruction NLL 300 not below the mean image's 200",))
    outcome = rules.paired([1, 2, 3, 4, 5, 6], [9, 9, 9, 9, 9, 9], higher_is_better=True, min_effect=0.0,
                           gates_a=[failed] * 6)
    assert outcome.verdict == "inconclusive" and outcome.reason == "under-trained"


# ------------------------------------------------------------------------------------------- other designs
def test_independent_no_effect_keeps_error_rates_at_alpha():
    rng = np.random.default_rng(7)
    outcomes = [rules.independent(rng.normal(0, 1, 6), rng.normal(0, 1, 6), higher_is_better=True, min_effect=0.0)
                for _ in range(SIMULATIONS)]
    r = rates(outcomes)
    assert r["reproduced"] <= ALPHA + SLACK and r["not reproduced"] <= ALPHA + SLACK


def test_independent_with_a_failed_arm_is_inconclusive():
    stuck = Gate(("samples do not vary (per-pixel std 0 < 0.01)",))
    outcome = rules.independent([0.5, 0.6, 0.7], [0.1, 0.2], higher_is_better=True, min_effect=0.02,
                                gates_b=[stuck, stuck])
    assert outcome.verdict == "inconclusive" and outcome.reason == "under-trained"


def test_non_inferiority():
    rng = np.random.default_rng(5)
    same = rng.normal(0, 1, 8)
    assert rules.non_inferior(same + rng.normal(0, 0.01, 8), same, higher_is_better=True,
                              margin=0.1).verdict == "reproduced"
    assert rules.non_inferior(same - 1.0, same, higher_is_better=True, margin=0.1).verdict == "not reproduced"
    # at the margin's edge (A worse by exactly the margin), "no worse" comes out at most at rate α
    outcomes = []
    for _ in range(SIMULATIONS):
        b = rng.normal(0, 1, 6)
        outcomes.append(rules.non_inferior(b - 0.1 + rng.normal(0, 0.3, 6), b, higher_is_better=True, margin=0.1))
    assert rates(outcomes)["reproduced"] <= ALPHA + SLACK


def test_trend():
    assert rules.trend([1, 2, 3, 4], [9.7, 9.0, 8.5, 8.7], decreasing=True).verdict == "inconclusive"
    assert rules.trend(range(8), -np.arange(8.0), decreasing=True).verdict == "reproduced"
    assert rules.trend(range(8), np.arange(8.0), decreasing=True).verdict == "not reproduced"
    rng = np.random.default_rng(9)
    r = rates([rules.trend(range(6), rng.normal(size=6), decreasing=True) for _ in range(300)])
    assert r["reproduced"] <= ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / 300)
    plan = rules.trend([4, 10, 17, 31], [9.672, 8.965, 8.451, 8.73], decreasing=True).power
    assert plan["needed"] > 4 and plan["towards"] == "reproduced"


def test_measured_difference():
    assert rules.measured_difference(2.13, 0.18, min_effect=0.0).verdict == "reproduced"
    assert rules.measured_difference(-2.13, 0.18, min_effect=0.0).verdict == "not reproduced"
    tie = rules.measured_difference(0.1, 0.18, min_effect=0.0)
    assert tie.verdict == "inconclusive" and tie.reason == "underpowered"
    assert rules.measured_difference(0.0, 0.1, min_effect=5.0).verdict == "not reproduced"  # far below 5
    # the claimed direction, significant, decides first (the minimal effect is a test against the claim)
    assert rules.measured_difference(1.0, 0.1, min_effect=5.0).verdict == "reproduced"


# ------------------------------------------------------------------------------------------- curves
def curve_frame(replicas: int, gap: float, seed_sd: float = 0.5) -> pd.DataFrame:
    rng = np.random.default_rng(11)
    rows = []
    for seed in range(replicas):
        offset = rng.normal(0, seed_sd)
        for level, x in enumerate((1.0, 2.0, 3.0)):
            for group, shift in (("new", gap), ("old", 0.0)):
                rows.append({"model": group, "setting": level, "seed": seed, "x": x + rng.normal(0, 0.05),
                             "y": x + offset + shift + rng.normal(0, 0.05)})
    return pd.DataFrame(rows)


def test_curve_with_two_replicas_is_too_few():
    outcome = rules.curve(curve_frame(2, 1.0), group="model", level="setting", x="x", y="y", better="new",
                          worse="old", higher_is_better=True, min_effect=0.0)
    assert outcome.verdict == "inconclusive" and outcome.reason == "too few replicas"


def test_curve_with_enough_replicas_decides_both_ways():
    kwargs = dict(group="model", level="setting", x="x", y="y", better="new", worse="old", higher_is_better=True,
                  min_effect=0.0)
    assert rules.curve(curve_frame(6, 1.0), **kwargs).verdict == "reproduced"
    assert rules.curve(curve_frame(6, -1.0), **kwargs).verdict == "not reproduced"


def test_curve_drops_gated_runs():
    frame = curve_frame(6, 1.0)
    keep = ~((frame.model == "new") & (frame.setting == 2) & (frame.seed == 0))
    outcome = rules.curve(frame, group="model", level="setting", x="x", y="y", better="new", worse="old",
                          higher_is_better=True, min_effect=0.0, keep=keep)
    assert outcome.test["runs_dropped_by_gate"] == 1 and outcome.test["replicas_per_cell"] == 5


def test_curve_gap_of_non_overlapping_curves_is_nan():
    assert math.isnan(rules.curve_gap([0, 1], [0, 1], [2, 3], [0, 1]))
    assert rules.curve_gap([0, 2], [1, 1], [0, 2], [0, 0]) == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------- records
def test_every_inconclusive_claim_needs_a_reason():
    fields = dict(id="x", paper="p", claim="c", metric="m", paper_value=1, ours=1)
    with pytest.raises(ValueError, match="needs a reason"):
        Claim(**fields, verdict="inconclusive", rule="r")
    outcome = rules.paired([1, 2, 3], [0, 1, 2], higher_is_better=True, min_effect=0.0)
    claim = Claim.decided(outcome, **fields, budget=training_budget(24_000, 24_000_000), seeds=[0, 1, 2],
                          gate=gate_summary([Gate()] * 6))
    assert claim.reason == "underpowered" and claim.budget["ratio"] == 0.001 and claim.gate["passed"] == 6


def test_checks_are_passed_or_failed():
    fields = dict(id="x", paper="p", claim="c", metric="m", paper_value=1, ours=1)
    assert Claim.decided(rules.check(True, "r"), **fields, kind="check").verdict == "passed"
    with pytest.raises(ValueError, match="check's verdict"):
        Claim(**fields, verdict="reproduced", rule="r", kind="check")
    with pytest.raises(ValueError, match="verdict must be one of"):
        rules.Outcome("maybe", "r")


def test_curve_with_every_run_gated_out_gives_the_gate_reason():
    frame = curve_frame(3, 1.0)
    none = pd.Series(False, index=frame.index)
    outcome = rules.curve(frame, group="model", level="setting", x="x", y="y", better="new", worse="old",
                          higher_is_better=True, min_effect=0.0, keep=none, collapsed=~none)
    assert outcome.verdict == "inconclusive" and outcome.reason == "collapsed"


def test_independent_reason_is_the_empty_arms():
    collapsed, stuck = Gate(("collapsed (KL 0.09 < 1 nats)",), True), Gate(("samples do not vary",))
    outcome = rules.independent([0.5, 0.6, 0.7], [0.1, 0.2], higher_is_better=True, min_effect=0.0,
                                gates_a=[Gate(), Gate(), collapsed], gates_b=[stuck, stuck])
    assert outcome.reason == "under-trained" and outcome.test["dropped_collapsed"] == 1
