"""Known-answer tests for the Spatial Broadcast Decoder chapter's claim checks (``dvae_core.papers.sbd``).

Each test builds a small per-seed results table whose verdict follows from the rules in
``dvae_core.claims``: a one-sided Mann–Whitney test over seeds for "SB beats DeConv", and a
bootstrapped mean curve advantage for the rate–distortion curves. These pin today's rules.
"""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy.stats import mannwhitneyu

from dvae_core.claims import Claim, compare_groups_rule
from dvae_core.papers import sbd

HIGH = [0.40, 0.45, 0.50, 0.55, 0.60, 0.65]
LOW = [0.10, 0.15, 0.20, 0.25, 0.30, 0.35]
SEPARATED_6_VS_6_P = 1 / 924


def results_table(sb: dict[str, list[float]], deconv: dict[str, list[float]]) -> pd.DataFrame:
    """Rows (decoder, seed, columns...) with DeConv's rows first, seeds 0, 1, … within each decoder."""
    rows = []
    for decoder, columns in (("deconv", deconv), ("sb", sb)):
        count = len(next(iter(columns.values())))
        rows += [{"decoder": decoder, "seed": i, **{k: v[i] for k, v in columns.items()}} for i in range(count)]
    return pd.DataFrame(rows)


def mig_claim(table: pd.DataFrame, alpha: float = 0.1) -> Claim:
    return sbd.decoder_claim(table, "mig", True, "test-mig", "SB has the higher MIG", "median MIG",
                             "SB > DeConv", alpha)


def test_decoder_claim_is_reproduced_for_a_clear_sb_advantage_on_a_higher_is_better_column():
    claim = mig_claim(results_table({"mig": HIGH}, {"mig": LOW}))
    assert isinstance(claim, Claim)
    assert claim.verdict == "reproduced"
    assert (claim.id, claim.paper, claim.claim, claim.metric, claim.paper_value) == (
        "test-mig", sbd.PAPER, "SB has the higher MIG", "median MIG", "SB > DeConv")
    assert claim.ours["sb_median"] == pytest.approx(0.525)
    assert claim.ours["deconv_median"] == pytest.approx(0.225)
    assert claim.ours["p_value"] == pytest.approx(SEPARATED_6_VS_6_P)
    assert claim.ours["p_value"] == pytest.approx(mannwhitneyu(HIGH, LOW, alternative="greater").pvalue)
    assert claim.ours["sb"] == HIGH
    assert claim.ours["deconv"] == LOW


def test_decoder_claim_is_not_reproduced_when_deconv_is_clearly_better():
    claim = mig_claim(results_table({"mig": LOW}, {"mig": HIGH}))
    assert claim.verdict == "not reproduced"
    assert claim.ours["sb_median"] == pytest.approx(0.225)
    assert claim.ours["deconv_median"] == pytest.approx(0.525)
    assert claim.ours["p_value"] == pytest.approx(1.0)


def test_decoder_claim_is_not_reproduced_for_identical_groups():
    claim = mig_claim(results_table({"mig": HIGH}, {"mig": HIGH}))
    assert claim.verdict == "not reproduced"
    assert claim.ours["sb_median"] == claim.ours["deconv_median"]


def test_decoder_claim_is_inconclusive_when_sb_has_the_better_median_but_the_groups_overlap():
    sb, deconv = [0.10, 0.50, 0.60], [0.20, 0.40, 0.55]
    claim = mig_claim(results_table({"mig": sb}, {"mig": deconv}))
    assert claim.ours["sb_median"] > claim.ours["deconv_median"]
    assert claim.ours["p_value"] == pytest.approx(0.5)
    assert claim.verdict == "inconclusive"


def test_decoder_claim_with_one_seed_per_decoder_is_inconclusive_without_a_p_value():
    claim = mig_claim(results_table({"mig": [0.9]}, {"mig": [0.1]}))
    assert claim.verdict == "inconclusive"
    assert claim.ours["p_value"] is None
    assert (claim.ours["sb_median"], claim.ours["deconv_median"]) == (0.9, 0.1)


def test_decoder_claim_on_a_lower_is_better_column_rewards_lower_sb_values():
    sb_nll, deconv_nll = [100.0, 101.0, 102.0, 103.0], [110.0, 111.0, 112.0, 113.0]
    table = results_table({"recon_nll": sb_nll}, {"recon_nll": deconv_nll})
    lower = sbd.decoder_claim(table, "recon_nll", False, "nll", "SB reconstructs better", "NLL", "SB < DeConv")
    higher = sbd.decoder_claim(table, "recon_nll", True, "nll", "SB reconstructs better", "NLL", "SB < DeConv")
    assert lower.verdict == "reproduced"
    assert lower.ours["p_value"] == pytest.approx(mannwhitneyu(sb_nll, deconv_nll, alternative="less").pvalue)
    assert lower.ours["p_value"] == pytest.approx(1 / 70)
    assert higher.verdict == "not reproduced"


def test_decoder_claim_rule_names_the_column_and_the_direction():
    table = results_table({"mig": HIGH, "recon_nll": LOW}, {"mig": LOW, "recon_nll": HIGH})
    higher = sbd.decoder_claim(table, "mig", True, "a", "c", "m", "p", alpha=0.2)
    lower = sbd.decoder_claim(table, "recon_nll", False, "b", "c", "m", "p")
    assert higher.rule == compare_groups_rule("SB mig", "DeConv mig", True, 0.2)
    assert lower.rule == compare_groups_rule("SB recon_nll", "DeConv recon_nll", False, 0.1)
    assert "median(SB mig) is higher than median(DeConv mig)" in higher.rule
    assert "median(SB recon_nll) is lower than median(DeConv recon_nll)" in lower.rule


def test_decoder_claim_alpha_sets_the_significance_threshold():
    table = results_table({"mig": [0.7, 0.8, 0.9]}, {"mig": [0.1, 0.2, 0.3]})
    assert mig_claim(table, alpha=0.1).verdict == "reproduced"
    assert mig_claim(table, alpha=0.1).ours["p_value"] == pytest.approx(0.05)
    assert mig_claim(table, alpha=0.01).verdict == "inconclusive"


def test_decoder_claim_lists_per_seed_values_in_table_order_and_ignores_other_decoders():
    table = pd.DataFrame({"decoder": ["sb", "deconv", "other", "sb", "deconv", "sb"],
                          "seed": [2, 0, 0, 0, 1, 1],
                          "mig": [0.123456, 0.01, 5.0, 0.3, 0.02, 0.2]})
    claim = sbd.decoder_claim(table, "mig", True, "x", "c", "m", "p", digits=3)
    assert claim.ours["sb"] == [0.123, 0.3, 0.2]
    assert claim.ours["deconv"] == [0.01, 0.02]
    assert claim.ours["sb_median"] == pytest.approx(0.2)
    assert claim.ours["deconv_median"] == pytest.approx(0.015)


def test_fig2_claims_have_fig2_ids_and_are_reproduced_for_higher_mig_and_lower_nll():
    table = results_table({"mig": HIGH, "recon_nll": [50.0, 51, 52, 53, 54, 55]},
                          {"mig": LOW, "recon_nll": [60.0, 61, 62, 63, 64, 65]})
    claims = sbd.fig2_claims(table)
    assert [c.id for c in claims] == ["sbd-fig2-mig", "sbd-fig2-reconstruction"]
    assert [c.verdict for c in claims] == ["reproduced", "reproduced"]
    assert [c.paper_value for c in claims] == ["SB > DeConv (Fig. 2)", "SB < DeConv (Fig. 2)"]
    assert all(c.paper == sbd.PAPER for c in claims)
    assert claims[0].ours["sb_median"] == pytest.approx(0.525)
    assert claims[1].ours["sb_median"] == pytest.approx(52.5)
    assert claims[1].ours["deconv_median"] == pytest.approx(62.5)
    assert claims[1].ours["p_value"] == pytest.approx(SEPARATED_6_VS_6_P)


@pytest.mark.parametrize("sb_better_mig, sb_better_nll, expected", [
    (True, False, ["reproduced", "not reproduced"]),
    (False, True, ["not reproduced", "reproduced"]),
    (False, False, ["not reproduced", "not reproduced"]),
])
def test_comparison_claims_judge_mig_higher_is_better_and_reconstruction_lower_is_better(
        sb_better_mig, sb_better_nll, expected):
    nll_low, nll_high = [50.0, 51, 52, 53, 54, 55], [60.0, 61, 62, 63, 64, 65]
    table = results_table({"mig": HIGH if sb_better_mig else LOW, "recon_nll": nll_low if sb_better_nll else nll_high},
                          {"mig": LOW if sb_better_mig else HIGH, "recon_nll": nll_high if sb_better_nll else nll_low})
    claims = sbd.comparison_claims(table, "sbd-fig3", "FactorVAE", "Fig. 3")
    assert [c.verdict for c in claims] == expected


def test_comparison_claims_use_the_prefix_setting_and_round_mig_to_4_and_nll_to_2_digits():
    table = results_table({"mig": [0.333333, 0.444444, 0.555555], "recon_nll": [10.1234, 10.5678, 10.9999]},
                          {"mig": [0.011111, 0.022222, 0.033333], "recon_nll": [20.1234, 20.5678, 20.9999]})
    mig, nll = sbd.comparison_claims(table, "sbd-small", "Small objects", "Sec. 4.2")
    assert (mig.id, nll.id) == ("sbd-small-mig", "sbd-small-reconstruction")
    assert mig.claim.startswith("Small objects: ") and nll.claim.startswith("Small objects: ")
    assert (mig.paper_value, nll.paper_value) == ("SB > DeConv (Sec. 4.2)", "SB < DeConv (Sec. 4.2)")
    assert mig.ours["sb"] == [0.3333, 0.4444, 0.5556]
    assert mig.ours["deconv"] == [0.0111, 0.0222, 0.0333]
    assert nll.ours["sb"] == [10.12, 10.57, 11.0]
    assert nll.ours["deconv"] == [20.12, 20.57, 21.0]
    assert mig.ours["sb_median"] == pytest.approx(0.444444)
    assert nll.ours["deconv_median"] == pytest.approx(20.5678)


def test_fig2_claims_pass_alpha_to_both_claims():
    table = results_table({"mig": [0.7, 0.8, 0.9], "recon_nll": [1.0, 2.0, 3.0]},
                          {"mig": [0.1, 0.2, 0.3], "recon_nll": [7.0, 8.0, 9.0]})
    assert [c.verdict for c in sbd.fig2_claims(table)] == ["reproduced", "reproduced"]
    assert [c.verdict for c in sbd.fig2_claims(table, alpha=0.01)] == ["inconclusive", "inconclusive"]


def test_generalisation_claims_are_reproduced_for_lower_heldout_nll_and_lower_gap():
    table = results_table({"heldout_nll": [70.0, 71, 72, 73], "gap": [1.0, 1.5, 2.0, 2.5]},
                          {"heldout_nll": [80.0, 81, 82, 83], "gap": [5.0, 5.5, 6.0, 6.5]})
    claims = sbd.generalisation_claims(table)
    assert [c.id for c in claims] == ["sbd-heldout-nll", "sbd-heldout-gap"]
    assert [c.verdict for c in claims] == ["reproduced", "reproduced"]
    assert claims[0].ours["sb_median"] == pytest.approx(71.5)
    assert claims[1].ours["deconv_median"] == pytest.approx(5.75)
    assert claims[1].ours["p_value"] == pytest.approx(1 / 70)


def test_generalisation_claims_judge_heldout_nll_and_gap_separately_and_round_to_2_digits():
    table = results_table({"heldout_nll": [70.004, 71.0, 72.0, 73.0], "gap": [9.0, 9.5, 10.0, 10.5]},
                          {"heldout_nll": [80.0, 81.0, 82.0, 83.0], "gap": [1.0, 1.5, 2.0, 2.556]})
    nll, gap = sbd.generalisation_claims(table)
    assert (nll.verdict, gap.verdict) == ("reproduced", "not reproduced")
    assert nll.ours["sb"] == [70.0, 71.0, 72.0, 73.0]
    assert gap.ours["deconv"] == [1.0, 1.5, 2.0, 2.56]


def test_geometry_claim_is_reproduced_when_sb_has_the_higher_affine_r2():
    table = results_table({"r2": [0.97, 0.98, 0.99]}, {"r2": [0.60, 0.70, 0.80]})
    claim = sbd.geometry_claim(table)
    assert claim.id == "sbd-geometry-linearity"
    assert claim.verdict == "reproduced"
    assert claim.ours["sb_median"] == pytest.approx(0.98)
    assert claim.ours["deconv_median"] == pytest.approx(0.70)


def test_geometry_claim_is_not_reproduced_when_deconv_has_the_higher_affine_r2():
    table = results_table({"r2": [0.60, 0.70, 0.80]}, {"r2": [0.97, 0.98, 0.99]})
    assert sbd.geometry_claim(table).verdict == "not reproduced"


def test_no_position_claim_checks_higher_mig_under_its_own_id():
    reproduced = sbd.no_position_claim(results_table({"mig": HIGH}, {"mig": LOW}))
    reversed_ = sbd.no_position_claim(results_table({"mig": LOW}, {"mig": HIGH}))
    assert reproduced.id == "sbd-fig5-shapes3d-mig"
    assert reproduced.verdict == "reproduced"
    assert reproduced.ours["p_value"] == pytest.approx(SEPARATED_6_VS_6_P)
    assert reversed_.verdict == "not reproduced"


def test_no_position_claim_counts_a_tie_as_not_reproduced():
    claim = sbd.no_position_claim(results_table({"mig": HIGH}, {"mig": HIGH}))
    assert claim.verdict == "not reproduced"


def gap_table(sb_mig: list[float], deconv_mig: list[float]) -> pd.DataFrame:
    return results_table({"mig": sb_mig}, {"mig": deconv_mig})


def test_small_objects_gap_claim_is_reproduced_when_the_small_gap_is_larger_and_the_small_claim_holds():
    small = gap_table([0.50, 0.55, 0.60], [0.20, 0.25, 0.30])
    normal = gap_table([0.35, 0.40, 0.45], [0.25, 0.30, 0.35])
    small_claim = mig_claim(small)
    assert small_claim.verdict == "reproduced"
    claim = sbd.small_objects_gap_claim(small, normal, small_claim)
    assert claim.id == "sbd-small-gap"
    assert claim.paper == sbd.PAPER
    assert claim.verdict == "reproduced"
    assert claim.ours["gap_small"] == pytest.approx(0.30)
    assert claim.ours["gap_normal"] == pytest.approx(0.10)


def test_small_objects_gap_claim_uses_medians_of_each_decoder():
    small = gap_table([0.1, 0.2, 0.9, 1.0], [0.0, 0.1, 0.2, 0.3])
    normal = gap_table([0.3, 0.4], [0.1, 0.5])
    claim = sbd.small_objects_gap_claim(small, normal, mig_claim(small))
    assert claim.ours["gap_small"] == pytest.approx(0.55 - 0.15)
    assert claim.ours["gap_normal"] == pytest.approx(0.35 - 0.30)


@pytest.mark.parametrize("small_verdict", ["inconclusive", "not reproduced"])
def test_small_objects_gap_claim_is_inconclusive_when_the_gap_is_larger_but_the_small_claim_is_not_reproduced(
        small_verdict):
    small = gap_table([0.50, 0.60], [0.20, 0.30])
    normal = gap_table([0.35, 0.45], [0.25, 0.35])
    small_claim = mig_claim(small)
    assert small_claim.verdict == "inconclusive"
    claim = sbd.small_objects_gap_claim(small, normal, replace(small_claim, verdict=small_verdict))
    assert claim.verdict == "inconclusive"
    assert claim.ours["gap_small"] > claim.ours["gap_normal"]


@pytest.mark.parametrize("normal_sb", [[0.60, 0.65, 0.70], [0.50, 0.55, 0.60]], ids=["smaller", "equal"])
def test_small_objects_gap_claim_is_not_reproduced_when_the_small_gap_is_not_larger(normal_sb):
    small = gap_table([0.50, 0.55, 0.60], [0.20, 0.25, 0.30])
    normal = gap_table(normal_sb, [0.20, 0.25, 0.30])
    small_claim = mig_claim(small)
    assert small_claim.verdict == "reproduced"
    claim = sbd.small_objects_gap_claim(small, normal, small_claim)
    assert claim.verdict == "not reproduced"
    assert claim.ours["gap_small"] <= claim.ours["gap_normal"]


@pytest.mark.parametrize("sb, deconv", [
    ([0.1, 0.2, 0.3], [0.4, 0.5, 0.6]),
    ([0.1, 0.5, 0.6], [0.4, 0.5, 0.9]),
], ids=["reversed", "equal-medians"])
def test_seeds_needed_is_none_when_the_effect_is_reversed_or_absent(sb, deconv):
    assert sbd.seeds_needed(np.array(sb), np.array(deconv)) is None


def test_seeds_needed_is_none_when_both_groups_have_zero_spread():
    assert sbd.seeds_needed(np.array([1.0, 1.0, 1.0]), np.array([0.0, 0.0, 0.0])) is None


def test_seeds_needed_asks_for_fewer_seeds_as_the_effect_grows():
    base = np.array([-1.0, 0.0, 1.0])
    needed = [sbd.seeds_needed(base + shift, base) for shift in (0.5, 1.0, 2.0)]
    assert needed == [14, 4, 2]


def test_seeds_needed_shrinks_with_the_effect_on_noisy_seeds():
    rng = np.random.default_rng(0)
    noise_a, noise_b = rng.normal(0.0, 0.05, size=(2, 6))
    noise_a, noise_b = noise_a - np.median(noise_a), noise_b - np.median(noise_b)
    needed = [sbd.seeds_needed(0.3 + gap + noise_a, 0.3 + noise_b) for gap in (0.02, 0.04, 0.08)]
    assert all(isinstance(n, int) for n in needed)
    assert needed[0] > needed[1] > needed[2] >= 2


def test_seeds_needed_grows_with_a_stricter_alpha_and_gives_up_past_max_seeds():
    base = np.array([-1.0, 0.0, 1.0])
    assert sbd.seeds_needed(base + 1.0, base, alpha=0.01) == 12
    assert sbd.seeds_needed(base + 0.5, base, max_seeds=13) is None
    assert sbd.seeds_needed(base + 0.5, base, max_seeds=14) == 14


def test_seeds_needed_never_asks_for_fewer_than_two_seeds_per_group():
    assert sbd.seeds_needed(np.array([100.0, 101.0, 102.0]), np.array([0.0, 1.0, 2.0])) == 2


def fake_runs(table: pd.DataFrame) -> list[dict]:
    return [{"config": SimpleNamespace(seed=int(row.seed), model=SimpleNamespace(decoder=row.decoder)),
             "name": f"{row.decoder}-{row.seed}"} for row in table.itertuples()]


def test_median_run_picks_the_seed_with_the_median_value_for_an_odd_count():
    table = pd.DataFrame({"decoder": ["sb"] * 5 + ["deconv"] * 5,
                          "seed": [10, 11, 12, 13, 14] * 2,
                          "mig": [0.9, 0.1, 0.5, 0.7, 0.3, 0.45, 0.41, 0.42, 0.43, 0.44]})
    runs = fake_runs(table)
    sb_run, sb_row = sbd.median_run(table, runs, "sb")
    deconv_run, deconv_row = sbd.median_run(table, runs, "deconv")
    assert (sb_row.seed, sb_row.mig) == (12, 0.5)
    assert sb_run is next(r for r in runs if r["name"] == "sb-12")
    assert (deconv_row.seed, deconv_row.mig) == (13, 0.43)
    assert deconv_run is next(r for r in runs if r["name"] == "deconv-13")


def test_median_run_picks_the_upper_of_the_two_middle_seeds_for_an_even_count():
    table = pd.DataFrame({"decoder": ["sb"] * 4 + ["deconv"] * 4,
                          "seed": [0, 1, 2, 3] * 2,
                          "mig": [0.4, 0.1, 0.3, 0.2, 0.0, 0.0, 0.0, 0.0]})
    run, row = sbd.median_run(table, fake_runs(table), "sb")
    assert (row.seed, row.mig) == (2, 0.3)
    assert run["name"] == "sb-2"


def test_median_run_ranks_by_the_requested_column():
    table = pd.DataFrame({"decoder": ["sb"] * 3, "seed": [0, 1, 2],
                          "mig": [0.1, 0.2, 0.3], "heldout_nll": [50.0, 70.0, 60.0]})
    run, row = sbd.median_run(table, fake_runs(table), "sb", column="heldout_nll")
    assert (row.seed, row.heldout_nll) == (2, 60.0)
    assert run["name"] == "sb-2"


BETAS = (0.4, 1.0, 5.4)


def curve_table(nll_offset: float, mig_offset: float, replica_noise: float = 0.0,
                kl_scale: float = 1.0) -> pd.DataFrame:
    """A β sweep with two replicas per (decoder, β): SB's NLL is DeConv's + ``nll_offset`` at the same KL."""
    rows = []
    for decoder in ("deconv", "sb"):
        sb = decoder == "sb"
        for beta in BETAS:
            for replica, noise in enumerate((replica_noise, -replica_noise)):
                rows.append({"decoder": decoder, "beta": beta, "seed": replica,
                             "kl": 30.0 / beta * (kl_scale if sb else 1.0),
                             "recon_nll": 100.0 + 10.0 * beta + (nll_offset if sb else 0.0) + noise,
                             "mig": 0.3 + (mig_offset if sb else 0.0)})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def dominating_sb_claims() -> list[Claim]:
    return sbd.rate_distortion_claims(curve_table(nll_offset=-5.0, mig_offset=0.2))


def test_rate_distortion_claims_have_fig4_ids_and_metrics(dominating_sb_claims):
    nll, mig = dominating_sb_claims
    assert (nll.id, mig.id) == ("sbd-fig4-nll-vs-kl", "sbd-fig4-mig-vs-nll")
    assert nll.metric == "mean SB advantage in recon_nll at equal kl, over the shared kl range"
    assert mig.metric == "mean SB advantage in mig at equal recon_nll, over the shared recon_nll range"
    assert (nll.paper_value, mig.paper_value) == ("SB curve below DeConv (Fig. 4a)", "SB curve above DeConv (Fig. 4b)")
    assert nll.paper == mig.paper == sbd.PAPER


def test_rate_distortion_claims_are_reproduced_when_sb_has_lower_nll_and_higher_mig(dominating_sb_claims):
    nll, mig = dominating_sb_claims
    assert (nll.verdict, mig.verdict) == ("reproduced", "reproduced")
    assert nll.ours == pytest.approx({"advantage": 5.0, "ci90_low": 5.0})
    assert mig.ours == pytest.approx({"advantage": 0.2, "ci90_low": 0.2})


def test_rate_distortion_claims_judge_nll_lower_is_better_and_mig_higher_is_better():
    nll, mig = sbd.rate_distortion_claims(curve_table(nll_offset=-5.0, mig_offset=-0.2))
    assert (nll.verdict, mig.verdict) == ("reproduced", "not reproduced")
    assert nll.ours["advantage"] == pytest.approx(5.0)
    assert mig.ours["advantage"] == pytest.approx(-0.2)


def test_curve_claim_is_not_reproduced_for_identical_curves():
    claim = sbd.curve_claim(curve_table(0.0, 0.0), "kl", "recon_nll", False, "c", "claim", "paper")
    assert claim.verdict == "not reproduced"
    assert claim.ours["advantage"] == pytest.approx(0.0)


def test_curve_claim_is_inconclusive_when_the_x_ranges_do_not_overlap():
    table = curve_table(nll_offset=-5.0, mig_offset=0.0, kl_scale=100.0)
    claim = sbd.curve_claim(table, "kl", "recon_nll", False, "c", "claim", "paper")
    assert claim.verdict == "inconclusive"
    assert np.isnan(claim.ours["advantage"])


def test_curve_claim_is_inconclusive_when_replica_noise_swamps_a_small_advantage():
    table = curve_table(nll_offset=-0.1, mig_offset=0.0, replica_noise=5.0)
    claim = sbd.curve_claim(table, "kl", "recon_nll", False, "c", "claim", "paper")
    assert claim.ours["advantage"] == pytest.approx(0.1)
    assert claim.ours["ci90_low"] < 0
    assert claim.verdict == "inconclusive"
    assert claim.id == "c"
