"""Known-answer tests for the Spatial Broadcast Decoder chapter's claims (``dvae_core.papers.sbd``).

Each test builds a small per-seed results table whose verdict follows from the book's rules
(``dvae_core.rules``): SB and DeConv are paired by seed (exact signed-rank test of the per-seed
differences), "SB does not hurt" is a non-inferiority test, "larger for small objects" a one-sample test
of a per-seed difference of differences, the Fig. 4 curves per-seed curve gaps; every run passes a
learning gate first. Exact one-sided signed-rank p-values: n seeds all in the claimed direction give
2⁻ⁿ (1/64 for 6, 1/8 for 3).
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest

from dvae_core.claims import Claim
from dvae_core.data import make_dataset
from dvae_core.papers import sbd
from dvae_core.papers.sbd import explorer
from dvae_core.train import untrained_model

HIGH = [0.40, 0.45, 0.50, 0.55, 0.60, 0.65]
LOW = [0.10, 0.15, 0.20, 0.25, 0.30, 0.35]
ALL_SIX_AGREE_P = 1 / 64
SMOKE = sbd.profile("smoke")


def approx4(value: float):
    """An Outcome's test numbers are rounded to 4 significant digits."""
    return pytest.approx(value, rel=5e-4)

# a run that learned: MIG far above its untrained model's, reconstruction far below the mean image's, KL > 1
PASSING = {"mig": 0.3, "untrained_mig": 0.005, "recon_nll": 100.0, "mean_image_nll": 300.0, "kl": 10.0}


def results_table(sb: dict[str, list[float]], deconv: dict[str, list[float]], seeds=None) -> pd.DataFrame:
    """Rows (decoder, seed, columns…), DeConv's first, with passing gate numbers wherever a column is not given."""
    rows = []
    for decoder, columns in (("deconv", deconv), ("sb", sb)):
        count = len(next(iter(columns.values())))
        for i in range(count):
            rows.append({"decoder": decoder, "seed": seeds[i] if seeds else i, **PASSING,
                         **{k: v[i] for k, v in columns.items()}})
    return pd.DataFrame(rows)


def mig_claim(table: pd.DataFrame, runs=None) -> Claim:
    return sbd.decoder_claim(table, "mig", True, "test-mig", "SB has the higher MIG", "MIG per seed", "SB > DeConv",
                             p=SMOKE, runs=runs)


def fake_runs(table: pd.DataFrame, images_per_s: float = 0.1) -> list[dict]:
    """Runs with real smoke configs and a training log, as costs.replicate_cost reads them (so slow that one
    run's 320 images take 3,200 CPU-seconds: the plan's CPU-hours are then large enough to check)."""
    return [{"config": sbd.comparison_config(SMOKE, row.decoder, int(row.seed)), "name": f"{row.decoder}-{row.seed}",
             "history": [{"images_per_s": images_per_s}] * 3} for row in table.itertuples()]


# --------------------------------------------------------------------------- paired decoder claims
def test_a_clear_sb_advantage_in_every_seed_is_reproduced_with_the_exact_signed_rank_p():
    claim = mig_claim(results_table({"mig": HIGH}, {"mig": LOW}))
    assert claim.verdict == "reproduced" and claim.reason is None
    assert claim.test["p_claim"] == approx4(ALL_SIX_AGREE_P)
    assert claim.test["n"] == 6 and claim.test["replicate"] == "seed pair"
    assert claim.test["mean_effect"] == approx4(0.3)
    assert claim.test["min_effect"] == sbd.MIN_EFFECTS["mig"] == 0.02
    assert "signed-rank" in claim.rule and "learning gate" in claim.rule
    assert (claim.id, claim.paper, claim.claim, claim.paper_value) == ("test-mig", sbd.PAPER, "SB has the higher MIG",
                                                                       "SB > DeConv")
    assert claim.ours == {"sb_median": 0.525, "deconv_median": 0.225, "sb": HIGH, "deconv": LOW}


def test_every_decoder_claim_records_its_budget_seeds_and_gate():
    claim = mig_claim(results_table({"mig": HIGH}, {"mig": LOW}, seeds=[10, 11, 12, 13, 14, 15]))
    assert claim.seeds == [10, 11, 12, 13, 14, 15]
    assert claim.budget == {"images_per_run": 20 * 16, "paper_images_per_run": 1_500_000 * 16,
                            "ratio": float(f"{320 / 24e6:.3g}")}
    assert claim.gate == {"runs": 12, "passed": 12, "collapsed": 0, "failed": {}}
    assert sbd.budget(sbd.profile("paper"))["ratio"] == 1.0


def test_deconv_clearly_better_in_every_seed_is_not_reproduced():
    claim = mig_claim(results_table({"mig": LOW}, {"mig": HIGH}))
    assert claim.verdict == "not reproduced"
    assert claim.test["p_reverse"] == approx4(ALL_SIX_AGREE_P)
    assert "reverse" in claim.explanation


def test_no_difference_in_six_seeds_is_evidence_below_the_minimal_effect():
    claim = mig_claim(results_table({"mig": HIGH}, {"mig": HIGH}))
    assert claim.verdict == "not reproduced"
    assert claim.test["p_below_min_effect"] == approx4(ALL_SIX_AGREE_P)
    assert "minimal effect" in claim.explanation


def test_a_small_mixed_difference_over_three_seeds_is_inconclusive_underpowered_with_a_priced_plan():
    table = results_table({"mig": [0.31, 0.28, 0.36]}, {"mig": [0.30, 0.30, 0.30]})
    claim = mig_claim(table, runs=fake_runs(table))
    assert claim.verdict == "inconclusive" and claim.reason == "underpowered"
    assert claim.power["needed"] > 3 and claim.power["unit"] == "seed pairs"
    # one more pair is a DeConv and an SB smoke run (20 steps × 16 images at 0.1 images/s each)
    extra = claim.power["needed"] - 3
    assert claim.power["cpu_hours"] == pytest.approx(round(extra * 2 * 320 / 0.1 / 3600, 2))
    assert claim.power["gpu_minutes"] > 0
    assert "CPU-hours" in claim.explanation


def test_three_seeds_all_in_favour_cannot_reach_significance_and_say_so():
    claim = mig_claim(results_table({"mig": HIGH[:3]}, {"mig": LOW[:3]}))
    assert claim.verdict == "inconclusive" and claim.reason == "underpowered"
    assert claim.test["p_claim"] == approx4(1 / 8) and claim.test["smallest_p"] == approx4(1 / 8)
    assert "smallest p" in claim.explanation


def test_pairing_by_seed_detects_a_shift_that_the_seed_to_seed_spread_would_hide():
    deconv = [0.10, 0.30, 0.50, 0.70, 0.90, 1.10]
    claim = mig_claim(results_table({"mig": [d + 0.05 for d in deconv]}, {"mig": deconv}))
    assert claim.verdict == "reproduced"
    assert claim.test["p_claim"] == approx4(ALL_SIX_AGREE_P)


def test_rows_are_paired_by_seed_not_by_table_order():
    table = results_table({"mig": HIGH}, {"mig": LOW}).sample(frac=1.0, random_state=3)
    claim = mig_claim(table)
    assert claim.verdict == "reproduced"
    assert claim.ours["sb"] == HIGH and claim.ours["deconv"] == LOW  # listed in seed order
    assert claim.seeds == list(range(6))


def test_decoder_arms_with_different_seeds_cannot_be_paired():
    table = results_table({"mig": HIGH[:3]}, {"mig": LOW[:3]})
    table.loc[(table.decoder == "sb") & (table.seed == 2), "seed"] = 7
    with pytest.raises(ValueError, match=r"seeds differ.*SB \[0, 1, 7\], DeConv \[0, 1, 2\]"):
        mig_claim(table)


def test_a_decoder_with_two_runs_of_one_seed_is_an_error():
    table = results_table({"mig": HIGH[:3]}, {"mig": LOW[:3]})
    table.loc[(table.decoder == "sb") & (table.seed == 2), "seed"] = 1
    with pytest.raises(ValueError, match="more than one run for seed"):
        mig_claim(table)


def test_a_lower_is_better_column_rewards_lower_sb_values():
    sb_nll, deconv_nll = [100.0, 101, 102, 103, 104, 105], [110.0, 111, 112, 113, 114, 115]
    table = results_table({"recon_nll": sb_nll}, {"recon_nll": deconv_nll})
    lower = sbd.decoder_claim(table, "recon_nll", False, "nll", "SB reconstructs better", "NLL", "SB < DeConv",
                              p=SMOKE, runs=None)
    higher = sbd.decoder_claim(table, "recon_nll", True, "nll", "SB reconstructs better", "NLL", "SB < DeConv",
                               p=SMOKE, runs=None)
    assert lower.verdict == "reproduced" and higher.verdict == "not reproduced"
    assert lower.test["min_effect"] == sbd.MIN_EFFECTS["recon_nll"] == 1.0
    assert "nats/image" in lower.rule


# --------------------------------------------------------------------------- learning gate
def test_a_run_below_its_untrained_score_is_dropped_with_its_pair_and_counted():
    table = results_table({"mig": HIGH}, {"mig": LOW})
    table.loc[(table.decoder == "sb") & (table.seed == 0), "untrained_mig"] = 0.9
    claim = mig_claim(table)
    assert claim.test["n"] == 5 and claim.test["dropped_by_gate"] == 1
    assert claim.test["p_claim"] == approx4(1 / 32)
    assert claim.verdict == "reproduced"
    assert claim.gate["runs"] == 12 and claim.gate["passed"] == 11 and claim.gate["collapsed"] == 0
    assert claim.gate["failed"] == {"score not above the untrained model's": 1}


def test_a_run_that_reconstructs_no_better_than_the_mean_image_fails_its_gate():
    gate = sbd.run_gate({**PASSING, "recon_nll": 301.0})
    assert not gate.passed and not gate.collapsed
    assert "mean image" in gate.failures[0]
    assert sbd.run_gate(PASSING).passed


def test_a_collapsed_run_is_dropped_and_counted_as_collapsed():
    table = results_table({"mig": HIGH}, {"mig": LOW})
    table.loc[(table.decoder == "deconv") & (table.seed == 3), "kl"] = 0.2
    claim = mig_claim(table)
    assert claim.test["n"] == 5 and claim.test["dropped_collapsed"] == 1
    assert claim.gate["collapsed"] == 1 and claim.gate["passed"] == 11


def test_when_every_run_has_collapsed_the_claim_is_inconclusive_collapsed():
    table = results_table({"mig": HIGH, "kl": [0.1] * 6}, {"mig": LOW, "kl": [0.1] * 6})
    claim = mig_claim(table)
    assert claim.verdict == "inconclusive" and claim.reason == "collapsed"
    assert claim.gate["passed"] == 0 and claim.gate["collapsed"] == 12


def test_when_the_gate_leaves_too_few_pairs_the_claim_is_inconclusive_under_trained():
    table = results_table({"mig": HIGH}, {"mig": LOW})
    table.loc[(table.decoder == "sb") & (table.seed < 4), "recon_nll"] = 400.0
    claim = mig_claim(table)
    assert claim.test["n"] == 2
    assert claim.verdict == "inconclusive" and claim.reason == "under-trained"


def test_the_gate_needs_the_evaluation_numbers():
    table = results_table({"mig": HIGH}, {"mig": LOW}).drop(columns="untrained_mig")
    with pytest.raises(ValueError, match="untrained_mig"):
        mig_claim(table)


# --------------------------------------------------------------------------- the chapter's claims
def test_fig2_claims_have_fig2_ids_and_are_reproduced_for_higher_mig_and_lower_nll():
    table = results_table({"mig": HIGH, "recon_nll": [50.0, 51, 52, 53, 54, 55]},
                          {"mig": LOW, "recon_nll": [60.0, 61, 62, 63, 64, 65]})
    claims = sbd.fig2_claims(table, p=SMOKE, runs=None)
    assert [c.id for c in claims] == ["sbd-fig2-mig", "sbd-fig2-reconstruction"]
    assert [c.verdict for c in claims] == ["reproduced", "reproduced"]
    assert [c.paper_value for c in claims] == ["SB > DeConv (Fig. 2)", "SB < DeConv (Fig. 2)"]
    assert all(c.paper == sbd.PAPER and c.budget and c.seeds == list(range(6)) and c.gate for c in claims)
    assert claims[1].ours["sb_median"] == pytest.approx(52.5)
    assert claims[1].ours["deconv_median"] == pytest.approx(62.5)


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
    claims = sbd.comparison_claims(table, "sbd-fig3", "FactorVAE", "Fig. 3", p=SMOKE, runs=None)
    assert [c.verdict for c in claims] == expected


def test_comparison_claims_use_the_prefix_setting_and_round_mig_to_4_and_nll_to_2_places():
    table = results_table({"mig": [0.333333, 0.444444, 0.555555], "recon_nll": [10.1234, 10.5678, 10.9999]},
                          {"mig": [0.011111, 0.022222, 0.033333], "recon_nll": [20.1234, 20.5678, 20.9999]})
    mig, nll = sbd.comparison_claims(table, "sbd-small", "Small objects", "Sec. 4.2", p=SMOKE, runs=None)
    assert (mig.id, nll.id) == ("sbd-small-mig", "sbd-small-reconstruction")
    assert mig.claim.startswith("Small objects: ") and nll.claim.startswith("Small objects: ")
    assert (mig.paper_value, nll.paper_value) == ("SB > DeConv (Sec. 4.2)", "SB < DeConv (Sec. 4.2)")
    assert mig.ours["sb"] == [0.3333, 0.4444, 0.5556]
    assert nll.ours["deconv"] == [20.12, 20.57, 21.0]
    assert mig.ours["sb_median"] == 0.4444 and nll.ours["deconv_median"] == 20.57


def test_generalisation_claims_are_reproduced_for_lower_heldout_nll_and_lower_gap():
    table = results_table({"heldout_nll": [70.0, 71, 72, 73, 74, 75], "gap": [1.0, 1.5, 2.0, 2.5, 3.0, 3.5]},
                          {"heldout_nll": [80.0, 81, 82, 83, 84, 85], "gap": [5.0, 5.5, 6.0, 6.5, 7.0, 7.5]})
    claims = sbd.generalisation_claims(table, p=SMOKE, runs=None)
    assert [c.id for c in claims] == ["sbd-heldout-nll", "sbd-heldout-gap"]
    assert [c.verdict for c in claims] == ["reproduced", "reproduced"]
    assert claims[1].ours["deconv_median"] == pytest.approx(6.25)


def test_heldout_sb_better_in_three_of_three_pairs_is_an_honest_underpowered():
    table = results_table({"heldout_nll": [172.11, 180.17, 171.78], "gap": [48.15, 57.2, 48.95]},
                          {"heldout_nll": [178.99, 185.05, 177.75], "gap": [54.33, 61.5, 51.73]})
    for claim in sbd.generalisation_claims(table, p=SMOKE, runs=fake_runs(table)):
        assert claim.verdict == "inconclusive" and claim.reason == "underpowered"
        assert claim.test["p_claim"] == approx4(0.125)
        assert claim.power["towards"] == "reproduced" and claim.power["needed"] >= 5


def test_geometry_claim_is_reproduced_when_sb_has_the_higher_affine_r2_and_reversed_is_not():
    sb, deconv = [0.97, 0.98, 0.99, 0.995, 0.99, 0.985], [0.60, 0.70, 0.80, 0.85, 0.90, 0.75]
    claim = sbd.geometry_claim(results_table({"r2": sb}, {"r2": deconv}), p=SMOKE, runs=None)
    assert claim.id == "sbd-geometry-linearity" and claim.verdict == "reproduced"
    assert claim.test["min_effect"] == sbd.MIN_EFFECTS["r2"] == 0.01
    reversed_ = sbd.geometry_claim(results_table({"r2": deconv}, {"r2": sb}), p=SMOKE, runs=None)
    assert reversed_.verdict == "not reproduced"


def test_geometry_claim_drops_a_seed_whose_r2_is_undefined():
    sb, deconv = [0.97, 0.98, 0.99, 0.995, 0.99, float("nan")], [0.60, 0.70, 0.80, 0.85, 0.90, 0.75]
    claim = sbd.geometry_claim(results_table({"r2": sb}, {"r2": deconv}), p=SMOKE, runs=None)
    assert claim.test["n"] == 5 and claim.test["p_claim"] == approx4(1 / 32)
    assert claim.verdict == "reproduced"


# --------------------------------------------------------------------------- Fig. 5: non-inferiority
def no_position(sb, deconv) -> Claim:
    return sbd.no_position_claim(results_table({"mig": sb}, {"mig": deconv}), p=SMOKE, runs=None)


def test_no_position_claim_is_reproduced_when_sb_is_within_the_margin_in_every_seed():
    claim = no_position([x - 0.005 for x in LOW], LOW)
    assert claim.id == "sbd-fig5-shapes3d-mig" and claim.verdict == "reproduced"
    assert claim.test["margin"] == sbd.NO_POSITION_MIG_MARGIN == 0.02
    assert claim.test["p_claim"] == approx4(ALL_SIX_AGREE_P)
    assert "no worse than" in claim.claim and claim.paper_value == "SB ≥ DeConv (Sec. 4.4, Fig. 5)"
    assert "non-inferiority" in claim.rule


def test_no_position_claim_counts_equal_mig_as_no_worse():
    assert no_position(HIGH, HIGH).verdict == "reproduced"


def test_no_position_claim_is_not_reproduced_when_sb_is_worse_by_more_than_the_margin():
    claim = no_position([x - 0.05 for x in HIGH], HIGH)
    assert claim.verdict == "not reproduced"
    assert claim.test["p_reverse"] == approx4(ALL_SIX_AGREE_P)


def test_no_position_claim_is_inconclusive_for_three_noisy_seeds_and_gated():
    table = results_table({"mig": [0.0458, 0.0543, 0.0728]}, {"mig": [0.0426, 0.0305, 0.083]})
    claim = sbd.no_position_claim(table, p=SMOKE, runs=fake_runs(table))
    assert claim.verdict == "inconclusive" and claim.reason == "underpowered"
    assert claim.gate["runs"] == 6 and claim.budget and claim.seeds == [0, 1, 2]


# --------------------------------------------------------------------------- small objects: difference of differences
def gap_tables(small_sb, small_deconv, normal_sb, normal_deconv):
    return results_table({"mig": small_sb}, {"mig": small_deconv}), results_table({"mig": normal_sb},
                                                                                  {"mig": normal_deconv})


def gap_claim(small, normal, small_runs=None, normal_runs=None) -> Claim:
    return sbd.small_objects_gap_claim(small, normal, p=SMOKE, small_runs=small_runs, normal_runs=normal_runs)


def test_small_gap_is_reproduced_when_every_seed_gains_more_on_small_objects():
    small, normal = gap_tables(HIGH, LOW, [x - 0.1 for x in HIGH], LOW)  # per-seed gaps 0.3 vs 0.2
    claim = gap_claim(small, normal)
    assert claim.id == "sbd-small-gap" and claim.paper == sbd.PAPER
    assert claim.verdict == "reproduced"
    assert claim.test["p_claim"] == approx4(ALL_SIX_AGREE_P)
    assert claim.ours["difference"] == pytest.approx([0.1] * 6)
    assert claim.ours["gap_small"] == pytest.approx([0.3] * 6) and claim.ours["gap_normal"] == pytest.approx([0.2] * 6)
    assert "difference of differences" in claim.rule
    assert claim.gate["runs"] == 24 and claim.seeds == list(range(6)) and claim.budget


def test_small_gap_is_not_reproduced_when_every_seed_gains_less_on_small_objects():
    small, normal = gap_tables([x - 0.1 for x in HIGH], LOW, HIGH, LOW)
    assert gap_claim(small, normal).verdict == "not reproduced"


def test_small_gap_is_decided_per_seed_not_by_medians():
    # medians of the gaps favour normal sprites, yet in every seed the small-object gap is the larger
    small, normal = gap_tables([0.31, 0.32, 0.33, 0.90, 0.91, 0.92], [0.30] * 6,
                               [0.305, 0.31, 0.32, 0.88, 0.90, 0.91], [0.30] * 6)
    claim = gap_claim(small, normal)
    assert all(d > 0 for d in claim.ours["difference"])
    assert claim.verdict == "reproduced"


def test_small_gap_drops_a_seed_if_any_of_its_four_runs_fails_its_gate():
    small, normal = gap_tables(HIGH, LOW, [x - 0.1 for x in HIGH], LOW)
    normal.loc[(normal.decoder == "deconv") & (normal.seed == 4), "kl"] = 0.3
    claim = gap_claim(small, normal)
    assert claim.test["n"] == 5 and claim.test["dropped_collapsed"] == 1
    assert claim.gate == {"runs": 24, "passed": 23, "collapsed": 1, "failed": {"collapsed": 1}}


def test_small_gap_prices_one_more_seed_as_four_runs():
    small, normal = gap_tables([0.31, 0.28, 0.36], [0.30] * 3, [0.30] * 3, [0.30] * 3)
    claim = gap_claim(small, normal, fake_runs(small), fake_runs(normal))
    assert claim.verdict == "inconclusive" and claim.reason == "underpowered"
    extra = claim.power["needed"] - 3
    assert claim.power["cpu_hours"] == pytest.approx(round(extra * 4 * 320 / 0.1 / 3600, 2))


def test_small_gap_needs_the_same_seeds_for_small_and_normal_sprites():
    small = results_table({"mig": HIGH[:3]}, {"mig": LOW[:3]})
    normal = results_table({"mig": HIGH[:3]}, {"mig": LOW[:3]}, seeds=[5, 6, 7])
    with pytest.raises(ValueError, match="same seeds"):
        gap_claim(small, normal)


# --------------------------------------------------------------------------- median_run
def runs_for(table: pd.DataFrame) -> list[dict]:
    return [{"config": sbd.comparison_config(SMOKE, row.decoder, int(row.seed)), "name": f"{row.decoder}-{row.seed}"}
            for row in table.itertuples()]


def test_median_run_picks_the_seed_with_the_median_value_for_an_odd_count():
    table = pd.DataFrame({"decoder": ["sb"] * 5 + ["deconv"] * 5,
                          "seed": [10, 11, 12, 13, 14] * 2,
                          "mig": [0.9, 0.1, 0.5, 0.7, 0.3, 0.45, 0.41, 0.42, 0.43, 0.44]})
    runs = runs_for(table)
    sb_run, sb_row = sbd.median_run(table, runs, "sb")
    deconv_run, deconv_row = sbd.median_run(table, runs, "deconv")
    assert (sb_row.seed, sb_row.mig) == (12, 0.5) and sb_run["name"] == "sb-12"
    assert (deconv_row.seed, deconv_row.mig) == (13, 0.43) and deconv_run["name"] == "deconv-13"


def test_median_run_of_an_even_count_takes_the_lower_middle_where_higher_is_better():
    table = pd.DataFrame({"decoder": ["sb"] * 4, "seed": [0, 1, 2, 3], "mig": [0.4, 0.1, 0.3, 0.2]})
    run, row = sbd.median_run(table, runs_for(table), "sb")
    assert (row.seed, row.mig) == (3, 0.2) and run["name"] == "sb-3"


def test_median_run_of_an_even_count_takes_the_upper_middle_where_lower_is_better():
    table = pd.DataFrame({"decoder": ["sb"] * 4, "seed": [0, 1, 2, 3], "heldout_nll": [40.0, 10.0, 30.0, 20.0]})
    _, row = sbd.median_run(table, runs_for(table), "sb", column="heldout_nll")
    assert (row.seed, row.heldout_nll) == (2, 30.0)
    _, row = sbd.median_run(table, runs_for(table), "sb", column="heldout_nll", higher_is_better=True)
    assert row.seed == 3


def test_median_run_asks_which_way_an_unknown_column_is_better():
    table = pd.DataFrame({"decoder": ["sb"] * 2, "seed": [0, 1], "other": [1.0, 2.0]})
    with pytest.raises(ValueError, match="higher_is_better"):
        sbd.median_run(table, runs_for(table), "sb", column="other")
    assert sbd.median_run(table, runs_for(table), "sb", column="other", higher_is_better=False)[1].seed == 1


@pytest.mark.parametrize("count, higher, index", [(1, True, 0), (5, True, 2), (5, False, 2), (6, True, 2),
                                                  (6, False, 3), (2, True, 0), (2, False, 1)])
def test_median_index(count, higher, index):
    assert sbd.median_index(count, higher) == index


def test_the_explorer_opens_on_the_run_the_fig2_notebook_shows():
    table = pd.DataFrame({"decoder": ["sb"] * 6, "seed": range(6), "mig": [0.6, 0.1, 0.5, 0.2, 0.4, 0.3]})
    runs = runs_for(table)
    migs = {("sb", int(s)): m for s, m in zip(table.seed, table.mig)}
    assert explorer.median_mig_run(runs, "sb", migs) is sbd.median_run(table, runs, "sb")[0]
    assert explorer.median_mig_run(runs, "sb", migs)["name"] == "sb-5"  # MIG 0.3, the lower middle


# --------------------------------------------------------------------------- Fig. 4 curves
BETAS = (0.4, 1.0, 5.4)


def curve_table(nll_offset: float, mig_offset: float, replicas: int = 3, noise: float = 0.0) -> pd.DataFrame:
    """A β sweep, ``replicas`` seeds per (decoder, β): SB's NLL is DeConv's + ``nll_offset`` at the same KL,
    plus ``noise`` alternating in sign over seeds (the same for both decoders of a seed otherwise)."""
    rows = []
    for decoder in ("deconv", "sb"):
        sb = decoder == "sb"
        for beta in BETAS:
            for seed in range(replicas):
                wobble = noise * (-1) ** seed if sb else 0.0
                rows.append({"decoder": decoder, "beta": beta, "seed": seed, **PASSING, "kl": 30.0 / beta,
                             "recon_nll": 100.0 + 10.0 * beta + (nll_offset if sb else 0.0) + wobble,
                             "mig": 0.3 + (mig_offset if sb else 0.0) + 0.01 * seed})
    return pd.DataFrame(rows)


def test_rate_distortion_claims_are_reproduced_when_sb_dominates_with_three_replicas_per_cell():
    nll, mig = sbd.rate_distortion_claims(curve_table(-5.0, 0.2, replicas=6), p=SMOKE, runs=None)
    assert (nll.id, mig.id) == ("sbd-fig4-nll-vs-kl", "sbd-fig4-mig-vs-nll")
    assert (nll.verdict, mig.verdict) == ("reproduced", "reproduced")
    assert nll.ours["mean_gap"] == pytest.approx(5.0) and mig.ours["mean_gap"] == pytest.approx(0.2)
    assert nll.ours["replicas_per_cell"] == 6 and len(nll.ours["per_seed_gap"]) == 6
    assert (nll.paper_value, mig.paper_value) == ("SB curve below DeConv (Fig. 4a)", "SB curve above DeConv (Fig. 4b)")
    assert nll.test["min_effect"] == 1.0 and mig.test["min_effect"] == 0.02
    assert nll.gate["runs"] == 36 and nll.seeds == list(range(6)) and nll.budget


def test_rate_distortion_claims_judge_nll_lower_is_better_and_mig_higher_is_better():
    nll, mig = sbd.rate_distortion_claims(curve_table(-5.0, -0.2, replicas=6), p=SMOKE, runs=None)
    assert (nll.verdict, mig.verdict) == ("reproduced", "not reproduced")


def test_with_two_replicas_per_beta_the_curves_are_too_few_replicas_whatever_they_show():
    for claim in sbd.rate_distortion_claims(curve_table(-5.0, 0.2, replicas=2), p=SMOKE, runs=None):
        assert claim.verdict == "inconclusive" and claim.reason == "too few replicas"
        assert claim.ours["replicas_per_cell"] == 2


def test_a_curve_with_three_replicas_is_still_underpowered_by_the_exact_test():
    claim = sbd.curve_claim(curve_table(-5.0, 0.0, replicas=3), "kl", "recon_nll", False, "c", "claim", "paper",
                            p=SMOKE, runs=None)
    assert claim.verdict == "inconclusive" and claim.reason == "underpowered"
    assert claim.test["p_claim"] == approx4(1 / 8)


def test_a_collapsed_run_leaves_its_curve_and_is_counted():
    table = curve_table(-5.0, 0.2, replicas=6)
    table.loc[(table.decoder == "sb") & (table.beta == 5.4) & (table.seed == 0), "kl"] = 0.05
    claim = sbd.curve_claim(table, "kl", "recon_nll", False, "c", "claim", "paper", p=SMOKE, runs=None)
    assert claim.test["runs_dropped_by_gate"] == 1
    assert claim.gate["collapsed"] == 1 and claim.gate["passed"] == 35
    assert claim.ours["replicas_per_cell"] == 5
    assert claim.verdict == "reproduced"


def test_curve_claim_with_identical_curves_is_not_reproduced_below_the_minimal_effect():
    claim = sbd.curve_claim(curve_table(0.0, 0.0, replicas=6), "kl", "recon_nll", False, "c", "claim", "paper",
                            p=SMOKE, runs=None)
    assert claim.verdict == "not reproduced"
    assert claim.ours["mean_gap"] == pytest.approx(0.0)


def test_curve_claim_is_inconclusive_when_seed_noise_swamps_a_small_advantage():
    claim = sbd.curve_claim(curve_table(-0.1, 0.0, replicas=6, noise=5.0), "kl", "recon_nll", False, "c", "claim",
                            "paper", p=SMOKE, runs=None)
    assert claim.verdict == "inconclusive" and claim.reason == "underpowered"


# --------------------------------------------------------------------------- evaluation
def untrained_run(decoder: str, seed: int, **dataset_kwargs) -> dict:
    config = sbd.comparison_config(SMOKE, decoder, seed, dataset_kwargs=dataset_kwargs or None)
    return {"model": untrained_model(config), "config": config, "history": []}


@pytest.fixture(scope="module")
def sprites():
    return make_dataset("colored_sprites", resolution=SMOKE.resolution)


def test_evaluate_run_scores_the_untrained_model_with_the_same_code_on_the_same_draws(sprites):
    row = sbd.evaluate_run(untrained_run("sb", 3), sprites, SMOKE)
    assert set(sbd.GATE_COLUMNS) <= set(row)
    # the run here is its own untrained model, so its numbers and the baseline's must agree exactly
    assert row["untrained_mig"] == row["mig"] and row["untrained_recon_nll"] == row["recon_nll"]
    assert 0 < row["mean_image_nll"] < row["recon_nll"]
    assert not sbd.run_gate(row).passed


def test_sb_and_deconv_at_one_seed_share_the_untrained_mig_and_the_mean_image_nll(sprites):
    sb, deconv = (sbd.evaluate_run(untrained_run(d, 1), sprites, SMOKE) for d in ("sb", "deconv"))
    assert sb["untrained_mig"] == deconv["untrained_mig"]
    assert sb["mean_image_nll"] == deconv["mean_image_nll"]
    assert sb["untrained_recon_nll"] != deconv["untrained_recon_nll"]  # the decoders differ
    other_seed = sbd.evaluate_run(untrained_run("sb", 2), sprites, SMOKE)
    assert other_seed["untrained_mig"] != sb["untrained_mig"]


def test_evaluate_generalisation_adds_the_heldout_nll_to_the_gated_numbers():
    dataset = make_dataset("colored_sprites", resolution=SMOKE.resolution, holdout=sbd.HOLDOUT_REGION)
    row = sbd.evaluate_generalisation(untrained_run("deconv", 0, holdout=sbd.HOLDOUT_REGION), dataset, SMOKE)
    assert set(sbd.GATE_COLUMNS) <= set(row)
    assert row["gap"] == pytest.approx(row["heldout_nll"] - row["recon_nll"])
    assert row["untrained_heldout_nll"] == row["heldout_nll"]
    table = sbd.generalisation_table([row])
    assert list(table.columns[:4]) == ["decoder", "seed", "recon_nll", "heldout_nll"]


def test_evaluate_geometry_adds_the_affine_r2_of_the_run_and_its_untrained_model(sprites):
    row = sbd.evaluate_geometry(untrained_run("sb", 0), sprites, SMOKE)
    assert 0.0 <= row["r2"] <= 1.0 and row["untrained_r2"] == row["r2"]
    assert len(row["dims"]) == 2 and set(sbd.GATE_COLUMNS) <= set(row)


def test_every_inconclusive_claim_carries_a_reason():
    claim = mig_claim(results_table({"mig": HIGH[:3]}, {"mig": LOW[:3]}))
    assert claim.verdict == "inconclusive" and claim.reason in ("underpowered", "too few replicas", "under-trained",
                                                               "collapsed")
    with pytest.raises(ValueError, match="needs a reason"):
        replace(claim, reason=None)


# --------------------------------------------------------------------------- Fig. 2's budget curve
def test_budget_profiles_are_fig2_at_each_budget_on_the_first_seeds():
    p = sbd.profile("preview", seed_offset=1000)
    profiles = sbd.budget_profiles(p)
    assert [bp.steps for bp in profiles] == list(p.budget_steps) and profiles[0].steps == p.steps
    assert all(bp.seeds == p.seeds[:p.budget_seeds] for bp in profiles)
    # each budget's runs are prefixes of the next budget's (so the curve costs only its longest budget)
    from dvae_core.runs import is_prefix
    for shorter, longer in zip(profiles, profiles[1:]):
        for a, b in zip(sbd.comparison_configs(shorter), sbd.comparison_configs(longer)):
            assert is_prefix(a, b), (a, b)


def test_budget_point_prices_the_pairs_that_would_decide_an_underpowered_effect():
    table = results_table({"mig": [0.33, 0.30, 0.36]}, {"mig": [0.30, 0.31, 0.31]})
    runs = fake_runs(table)
    point = sbd.budget_point(table, SMOKE, runs)
    assert point["runs_passing_gate"] == 6 and point["collapsed"] == 0
    assert point["mig_verdict"] == "inconclusive (underpowered)"
    assert point["mig_effect"] == approx4((0.03 - 0.01 + 0.05) / 3)
    needed = point["mig_pairs_to_decide"]
    assert needed >= 5
    pair = 2 * SMOKE.steps * SMOKE.batch_size / 0.1  # CPU-seconds of one pair at 0.1 images/s
    assert point["mig_cpu_hours"] == pytest.approx(needed * pair / 3600, rel=0.01)
    assert point["mig_gpu_minutes"] > 0


def test_budget_point_of_a_decided_claim_needs_the_pairs_it_has():
    table = results_table({"mig": HIGH}, {"mig": LOW})
    point = sbd.budget_point(table, SMOKE)
    assert point["mig_verdict"] == "reproduced" and point["mig_pairs_to_decide"] == 6
    assert point["mig_p"] == approx4(ALL_SIX_AGREE_P) and point["mig_cpu_hours"] is None  # no runs, no price


def test_budget_curve_counts_runs_that_fail_their_gate():
    table = results_table({"mig": [0.001, 0.3, 0.35]}, {"mig": [0.2, 0.2, 0.2]})  # SB seed 0 below untrained
    curve = sbd.budget_curve([table, table], [SMOKE, replace(SMOKE, steps=40)])
    assert list(curve.steps) == [20, 40] and list(curve.runs_passing_gate) == [5, 5]
    assert list(curve.images_per_run) == [20 * SMOKE.batch_size, 40 * SMOKE.batch_size]


def test_budget_summary_states_the_last_budget_and_the_price_of_deciding_it():
    table = results_table({"mig": [0.33, 0.30, 0.36]}, {"mig": [0.30, 0.31, 0.31]})
    curve = sbd.budget_curve([table], [SMOKE], [fake_runs(table)])
    text = sbd.budget_summary(curve)
    assert f"{20 * SMOKE.batch_size:,} images per run" in text and "6 of 6 runs" in text
    assert "inconclusive (underpowered)" in text and "seed pairs" in text and "CPU-hours" in text
    # every run failed its gate: no numbers to plan from, and the sentence says so
    failed = results_table({"mig": [0.001] * 3}, {"mig": [0.001] * 3})
    text = sbd.budget_summary(sbd.budget_curve([failed], [SMOKE]))
    assert "0 of 6 runs" in text and "n/a" in text and "no effect and spread" in text


def test_budget_summary_says_when_the_effect_changes_sign_with_training():
    early = results_table({"recon_nll": [100.0, 101.0, 99.0]}, {"recon_nll": [103.0, 104.0, 103.5]})
    late = results_table({"recon_nll": [90.0, 91.0, 89.0]}, {"recon_nll": [85.0, 86.0, 84.0]})
    curve = sbd.budget_curve([early, late], [SMOKE, replace(SMOKE, steps=40)])
    text = sbd.budget_summary(curve, "recon_nll")
    assert "sign changes with training" in text and "(towards not reproduced)" in text
    assert "sign changes" not in sbd.budget_summary(sbd.budget_curve([early, early], [SMOKE, SMOKE]), "recon_nll")
