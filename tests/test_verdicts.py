"""The one verdict formatter (dvae_core.verdicts) and the generated deviations tables (dvae_core.deviations)."""

from __future__ import annotations

import html
import re

import pytest

from dvae_core import deviations, verdicts
from dvae_core.claims import Claim

RECORD = {"id": "sbd-x", "notebook": "sbd_fig2_deconv_vs_sb", "claim": "SB | beats *DeConv*", "metric": "MIG",
          "paper_value": "SB > DeConv (Fig. 2)", "ours": {"sb_median": 0.05583, "deconv_median": 0.0396,
                                                         "sb": [0.1, 0.2], "per_seed": {"1": 0.1}},
          "verdict": "inconclusive", "reason": "underpowered", "explanation": "p = 0.5 with 6 seed pairs",
          "rule": "exact Wilcoxon signed-rank test, one-sided α = 0.05: reproduced if …",
          "budget": {"images_per_run": 24000, "paper_images_per_run": 24000000, "ratio": 0.001},
          "gate": {"runs": 12, "passed": 11, "collapsed": 1, "failed": {}}, "seeds": [1000, 1001, 1002]}


@pytest.mark.parametrize("value, shown", [(24000, "24,000"), (0.05583, "0.0558"), (125.5, "126"), (2.0, "2"),
                                          (1234.6, "1,235"), (1e-5, "1e-05"), (True, "yes"), (-0.0124, "-0.0124")])
def test_numbers_are_rounded_for_readers(value, shown):
    assert verdicts.number(value) == shown


def test_values_show_scalars_and_per_model_numbers_and_leave_per_seed_lists_out():
    assert verdicts.values(RECORD["ours"]) == "SB median 0.0558; DeConv median 0.0396"
    assert verdicts.values({"AE": {"N": 88.3216, "GMM": 30.1}, "limit": 62.12, "per_seed": [1, 2, 3],
                            "by_seed": {"2000": 1.0}}) == "AE: N 88.3, GMM 30.1; limit 62.1"
    assert verdicts.values({"beta_vae_eval": 1.0, "factor_vae_eval": 0.8094}) == "β-VAE eval 1; FactorVAE eval 0.809"
    # a paper value stored as the str() of a dict reads as numbers; other text is left as it is
    assert verdicts.values("{'VLAE': 78.94, 'PixelCNN': 87.55}") == "VLAE 78.9; PixelCNN 87.5"
    assert verdicts.values("each dimension's standard deviation") == "each dimension's standard deviation"
    assert verdicts.values({"per_seed": [1]}) == "per seed: see the results file"


def test_a_view_puts_the_reason_the_scale_and_the_short_rule_in_words():
    v = verdicts.view(RECORD)
    assert (v.verdict, v.badge, v.label) == ("inconclusive", "bdg-warning", "inconclusive")
    assert v.why.startswith("underpowered (too few replicates") and v.why.endswith("p = 0.5 with 6 seed pairs")
    assert v.rule == "exact Wilcoxon signed-rank test, one-sided α = 0.05"
    assert v.scale == ("24,000 training images per run, 1/1,000 of the paper's 24,000,000; 11 of 12 runs passed "
                       "their learning gate (1 collapsed); seeds 1000–1002")
    check = verdicts.view({**RECORD, "kind": "check", "verdict": "passed", "reason": None, "budget": None})
    assert check.label == "passed (check)" and check.badge == "bdg-success" and not check.why.startswith("under")


def test_a_claim_object_and_its_record_give_the_same_card():
    claim = Claim(id="a", paper="P", claim="c", metric="m", paper_value=1.0, ours={"x": 2.0}, verdict="reproduced",
                  rule="t: r", explanation="p = 0.01")
    assert verdicts.view(claim) == verdicts.view({**claim.__dict__})


def test_both_renderers_print_every_field_of_the_same_view():
    v = verdicts.view(RECORD)
    myst, page = verdicts.to_myst([v]), verdicts.to_html([v])
    text = re.sub(r"<[^>]+>", " ", html.unescape(page))
    for field in (v.label, v.claim, v.ours, v.paper, v.why, v.scale, v.rule, v.rule_full, v.id):
        assert field in text, field
        assert field.replace("|", "\\|").replace("*", "\\*").replace(">", "\\>").replace("<", "\\<") in myst, field
    assert myst.startswith("::::{card}") and "{bdg-warning}`inconclusive`" in myst
    assert 'id="claim-sbd-x"' in page and "background:#9a6700" in page
    # the claim's text can open no table cell, emphasis or role in MyST
    assert "SB \\| beats \\*DeConv\\*" in myst
    assert repr(verdicts.show_claims([RECORD])).startswith("[inconclusive] SB | beats *DeConv*")
    assert verdicts.show_claims([RECORD])._repr_html_() == page


def test_cards_of_non_comparable_numbers_say_so():
    rae = verdicts.view({**RECORD, "notebook": "rae_table1"})
    assert "Inception" in rae.compare and "Compare:" in verdicts.to_myst([rae])
    assert verdicts.view(RECORD).compare == ""


def test_deviations_come_from_the_notebooks_recipes_and_profiles():
    rows, shared = deviations.deviations("rae_table1")
    by_setting = {r.setting: r for r in rows}
    assert by_setting["channels"][1:] == ("8", "128", "16 ×")
    assert by_setting["training steps per run"][1:] == ("1,500", "60,000", "40 ×")
    assert by_setting["images per run"].ratio == "40 ×"
    assert any(s.startswith("batch size 100") for s in shared)  # the same in both profiles: listed, not a row
    table = deviations.to_markdown(rows, shared)
    assert table.startswith("| setting | preview | paper profile | paper / preview |")
    assert "<td>channels</td><td>8</td><td>128</td><td>16 ×</td>" in deviations.to_html(rows, shared)


def test_deviations_of_a_notebook_that_trains_nothing_come_from_its_profile():
    rows, _ = deviations.deviations("fvae_metric")
    assert rows and all(r.setting != "training runs" for r in rows)


def test_deviations_command_names_an_unknown_notebook(capsys):
    with pytest.raises(SystemExit) as exit_:
        deviations.main(["nope"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no notebook 'nope': choose one of sbd_fig2_deconv_vs_sb")
