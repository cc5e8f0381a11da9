"""Verdict rules, the results files and the reproduce CLI's handling of bad input."""

import json
from pathlib import Path

import pytest

from dvae_core import claims as claims_mod
from dvae_core import reproduce
from dvae_core.claims import Claim, write_claims
from dvae_core.profiles import check_profile


def test_claim_rejects_unknown_verdict():
    with pytest.raises(ValueError, match="verdict must be one of"):
        Claim("x", "p", "c", "m", 1, 2, "probably", "rule")


def test_write_claims_is_atomic_json(tmp_path, monkeypatch):
    monkeypatch.setattr(claims_mod, "RESULTS_DIR", tmp_path)
    claim = Claim("id1", "paper", "claim", "metric", "A > B", {"a": 1.5}, "inconclusive", "rule", reason="underpowered")
    path = write_claims([claim], "smoke", "nb", extra={"runs": [1, 2]}, seed_offset=7)
    payload = json.loads(path.read_text())
    assert payload["claims"][0]["verdict"] == "inconclusive" and payload["claims"][0]["notebook"] == "nb"
    assert payload["claims"][0]["seed_offset"] == 7 and payload["claims"][0]["reason"] == "underpowered"
    assert payload["code"] == payload["claims"][0]["code"] and payload["code"] != ""
    assert payload["runs"] == [1, 2] and not list(tmp_path.rglob("*.tmp"))


def test_code_version_names_the_commit_and_local_changes(monkeypatch, tmp_path):
    import subprocess

    version = claims_mod.code_version()
    head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True,
                          cwd=claims_mod.REPO_ROOT).stdout.strip()
    assert version == "unknown" or version.split("+")[0] == head
    monkeypatch.setattr(claims_mod, "REPO_ROOT", tmp_path)  # not a checkout
    assert claims_mod.code_version() == "unknown"


def test_replicates_needed_shrinks_with_a_larger_effect():
    from dvae_core.rules import replicates_needed

    noisy, clear = replicates_needed(0.02, 0.03), replicates_needed(0.2, 0.03)
    assert clear is not None and noisy is not None and clear < noisy
    assert clear == 5  # never fewer than an exact test needs to reach p < 0.05
    assert replicates_needed(0.0, 0.03) is None


def test_unknown_profile_is_a_clear_error(capsys):
    with pytest.raises(ValueError, match="unknown profile 'fast'.*smoke, preview, paper"):
        check_profile("fast")
    with pytest.raises(SystemExit) as exit_info:
        reproduce.main(["--profile", "fast"])
    assert exit_info.value.code == 2
    assert "unknown profile 'fast'" in capsys.readouterr().err


def test_unknown_notebook_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        reproduce.main(["--profile", "smoke", "--only", "nope"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no notebook matches --only 'nope'") and "sbd_fig2" in err and "Traceback" not in err


@pytest.mark.parametrize("seed", ["-5", str(2 ** 70)])
def test_a_seed_out_of_range_is_refused_before_any_notebook_runs(seed, capsys, monkeypatch):
    monkeypatch.setattr(reproduce, "execute", lambda *a, **k: pytest.fail("a notebook ran"))
    with pytest.raises(SystemExit) as exit_info:
        reproduce.main(["--profile", "smoke", "--seed", seed])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith(f"error: --seed {seed}: give a whole number from 0")


def fake_results(tmp_path, monkeypatch) -> Path:
    results = tmp_path / "results"
    (results / "smoke").mkdir(parents=True)
    monkeypatch.setattr(reproduce, "RESULTS_DIR", results)
    monkeypatch.setattr(reproduce, "SCORECARD_PAGE", tmp_path / "scorecard.md")
    monkeypatch.setattr(reproduce, "GENERATED_DIR", tmp_path / "generated")
    return results / "smoke"


def test_a_damaged_results_file_is_named_before_any_notebook_runs(tmp_path, capsys, monkeypatch):
    (fake_results(tmp_path, monkeypatch) / "timings.json").write_text('{"sbd_fig2_deconv_vs_sb": 6')
    monkeypatch.setattr(reproduce, "execute", lambda *a, **k: pytest.fail("a notebook ran"))
    with pytest.raises(SystemExit) as exit_info:
        reproduce.main(["--profile", "smoke", "--only", "sbd_fig2*"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "timings.json is damaged" in err and "delete it" in err


def test_a_failed_notebook_marks_its_old_claims_stale_until_it_runs_again(tmp_path, capsys, monkeypatch):
    results = fake_results(tmp_path, monkeypatch)
    old = {"id": "x", "paper": "P", "claim": "c", "metric": "m", "paper_value": "v", "ours": 1.0,
           "verdict": "reproduced", "rule": "r", "profile": "smoke", "notebook": "sbd_geometry"}
    (results / "sbd_geometry.json").write_text(json.dumps({"notebook": "sbd_geometry", "claims": [old]}))

    def fail(*args, **kwargs):
        raise RuntimeError("cell 4 raised")

    monkeypatch.setattr(reproduce, "execute", fail)
    assert reproduce.main(["--profile", "smoke", "--only", "sbd_geometry"]) == 1
    claim, = json.loads((results / "scorecard.json").read_text())["claims"]
    assert claim["verdict"] == "reproduced" and "failed on" in claim["stale"]
    assert "**Stale:** the notebook failed on" in (results / "scorecard.md").read_text()

    def succeed(notebook, output, profile, device, seed):
        (results / "sbd_geometry.json").write_text(json.dumps({"notebook": "sbd_geometry", "claims": [old]}))

    monkeypatch.setattr(reproduce, "execute", succeed)
    assert reproduce.main(["--profile", "smoke", "--only", "sbd_geometry"]) == 0
    assert "stale" not in json.loads((results / "scorecard.json").read_text())["claims"][0]


def test_a_smoke_run_writes_no_committed_book_fragment(tmp_path, monkeypatch):
    fake_results(tmp_path, monkeypatch)
    reproduce.write_book_fragments("smoke")
    assert not (tmp_path / "generated").exists()


def test_notebooks_run_in_book_order_so_reused_runs_are_trained_by_their_owner(tmp_path, monkeypatch):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    for name in ("a_explorer", "b_owner", "z_extra"):
        (notebooks / f"{name}.ipynb").write_text("{}")
    toc = tmp_path / "_toc.yml"
    toc.write_text("root: intro\nchapters:\n  - file: notebooks/b_owner\n  - file: notebooks/a_explorer\n")
    monkeypatch.setattr(reproduce, "NOTEBOOKS_DIR", notebooks)
    monkeypatch.setattr(reproduce, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(reproduce, "TOC_FILE", toc)
    assert [p.stem for p in reproduce.find_notebooks()] == ["b_owner", "a_explorer", "z_extra"]
    assert [p.stem for p in reproduce.find_notebooks("*_e*")] == ["a_explorer", "z_extra"]


def test_scorecard_groups_cards_by_paper_and_notebook_with_colours_and_links():
    claims = [{"id": "a", "claim": "SB | wins", "paper_value": "SB > DeConv", "ours": {"sb": 0.2, "p_value": 0.01},
               "verdict": "reproduced", "notebook": "sbd_nb1"},
              {"id": "b", "claim": "other", "paper_value": 1.0, "ours": 2.0, "verdict": "not reproduced",
               "notebook": "vlae_nb2"}]
    page = reproduce.scorecard_markdown(claims, {"sbd_nb1": 90.0}, "preview")
    assert "{bdg-success}`reproduced`" in page and "{bdg-danger}`not reproduced`" in page
    assert "### [sbd_nb1](../notebooks/sbd_nb1.ipynb)" in page and "SB \\| wins" in page
    assert page.index("## Spatial Broadcast Decoder") < page.index("### [sbd_nb1]") < \
        page.index("## Variational Lossy Autoencoder") < page.index("### [vlae_nb2]")
    assert "1 reproduced, 1 not reproduced, 0 inconclusive" in page and "| sbd_nb1 | 1.5 |" in page
    assert "- [Spatial Broadcast Decoder](sbd.md): 1 reproduced, 0 not reproduced, 0 inconclusive" in page
    # the landing page includes the banner and the counts, not the cards
    included = page.split(reproduce.CLAIMS_START)[1].split(reproduce.CLAIMS_END)[0]
    assert ":::{important}" in included and "::::{card}" not in included


def test_scorecard_counts_checks_apart_and_shows_reasons_and_scale():
    claims = [{"id": "a", "claim": "SB wins", "paper_value": "SB > DeConv", "ours": {}, "verdict": "inconclusive",
               "reason": "underpowered", "explanation": "p = 0.125 with 3 seed pairs", "notebook": "sbd_heldout",
               "budget": {"images_per_run": 24000, "paper_images_per_run": 24000000, "ratio": 0.001}},
              {"id": "m", "kind": "check", "claim": "metric ignores rescaling", "paper_value": "", "ours": {},
               "verdict": "passed", "notebook": "fvae_metric"}]
    page = reproduce.scorecard_markdown(claims, {}, "preview")
    assert "**0 reproduced, 0 not reproduced, 1 inconclusive** out of 1 reproduction claims" in page
    assert "**1 of 1 checks**" in page and "{bdg-success}`passed (check)`" in page
    assert "underpowered (too few replicates" in page and "p = 0.125 with 3 seed pairs" in page
    assert "1/1,000 of the paper's 24,000,000" in page
    assert "Its models saw 1/1,000 of the training images" in page
    assert "Checks of a metric on constructed codes: counted apart" in page
    assert reproduce.tally(claims) == "0 reproduced, 0 not reproduced, 1 inconclusive; 1 of 1 checks passed"


def test_the_scale_banner_says_whether_a_paper_profile_run_exists(tmp_path, monkeypatch):
    claims = [{"id": "a", "claim": "c", "paper_value": "", "ours": {}, "verdict": "reproduced", "notebook": "sbd_a",
               "budget": {"images_per_run": 100, "paper_images_per_run": 4000, "ratio": 0.025}},
              {"id": "b", "claim": "c", "paper_value": "", "ours": {}, "verdict": "reproduced", "notebook": "sbd_b",
               "budget": {"images_per_run": 100, "paper_images_per_run": 100000, "ratio": 0.001}}]
    monkeypatch.setattr(reproduce, "RESULTS_DIR", tmp_path)
    banner = reproduce.scale_banner(claims, "preview", tmp_path)
    assert "between 1/1,000 and 1/40" in banner and "No run of the `paper` profile" in banner
    (tmp_path / "paper").mkdir()
    (tmp_path / "paper" / "sbd_a.json").write_text(json.dumps({"notebook": "sbd_a", "claims": claims[:1]}))
    assert "has results for 1 claims" in reproduce.scale_banner(claims, "preview", tmp_path)


def test_expected_duration_sums_the_recorded_times_and_names_the_unmeasured():
    line = reproduce.expected_duration("preview", ["a", "b", "c"], {"a": 600.0, "b": 1200.0})
    assert line.startswith("[preview] 3 notebook(s): expected ≈ 30 min") and "no recorded time for c" in line
    assert "expected" not in reproduce.expected_duration("paper", ["a"], {})


def test_a_scripts_record_beside_the_notebooks_results_is_not_read_as_claims(tmp_path, monkeypatch):
    results = fake_results(tmp_path, monkeypatch)
    claim = {"id": "x", "paper": "P", "claim": "c", "metric": "m", "paper_value": "v", "ours": 1.0,
             "verdict": "reproduced", "rule": "r", "profile": "smoke", "notebook": "sbd_geometry"}
    (results / "sbd_geometry.json").write_text(json.dumps({"notebook": "sbd_geometry", "claims": [claim]}))
    # scripts/thread_check.py's record: claims of another shape, and no "notebook"
    (results / "thread_check.json").write_text(json.dumps({"threads": 2, "claims": [{"id": "x", "now": "r"}]}))
    assert [c["id"] for c in reproduce.load_results("smoke")] == ["x"]
    reproduce.aggregate("smoke", {})
    assert "1 reproduced" in (results / "scorecard.md").read_text()


def test_the_scorecard_shows_the_gpu_device_checks_verdict_beside_ours(tmp_path):
    claims = [{"id": "sbd-fig2-mig", "claim": "SB disentangles better", "paper_value": "SB > DeConv", "ours": {},
               "verdict": "inconclusive", "reason": "underpowered", "notebook": "sbd_fig2_deconv_vs_sb"},
              {"id": "vlae-x", "claim": "other", "paper_value": 1.0, "ours": 2.0, "verdict": "reproduced",
               "notebook": "vlae_nll_table"}]
    page = reproduce.scorecard_markdown(claims, {}, "preview", results_dir=tmp_path)
    assert "No GPU device check is on record" in page and "GPU check" not in page
    # what scripts/device_check.py --out results/gpu writes: one file per check, and summaries without claims
    (tmp_path / "gpu").mkdir()
    (tmp_path / "gpu" / "sbd_fig2.json").write_text(json.dumps({
        "check": "sbd_fig2", "device": "cuda", "gpu": "NVIDIA H100", "images_per_run": 216000, "replicates": 24,
        "claims": [{"id": "sbd-fig2-mig", "verdict": "reproduced", "reason": None,
                    "explanation": "SB above DeConv in 20 of 24 pairs"}]}))
    (tmp_path / "gpu" / "device_check.json").write_text(json.dumps({"checks": {}}))
    (tmp_path / "gpu" / "multi_run.json").write_text(json.dumps({"check": "multi_run", "claims": []}))
    page = reproduce.scorecard_markdown(claims, {}, "preview", results_dir=tmp_path)
    assert "decided 1 of these claims at larger scale" in page and "on NVIDIA H100" in page
    fig2_card = page[page.index("SB disentangles better"):page.index("`sbd-fig2-mig`")]
    assert ("**GPU check:** reproduced on NVIDIA H100, 216,000 training images per run, 24 replicates: "
            "SB above DeConv in 20 of 24 pairs") in fig2_card
    assert page.count("**GPU check:**") == 1


def test_pages_only_rebuilds_the_scorecard_with_a_gpu_check_and_runs_no_notebook(tmp_path, capsys, monkeypatch):
    results = fake_results(tmp_path, monkeypatch)
    claim = {"id": "sbd-fig2-mig", "claim": "SB disentangles better", "paper_value": "SB > DeConv", "ours": {},
             "verdict": "inconclusive", "reason": "underpowered", "notebook": "sbd_fig2_deconv_vs_sb"}
    record = {"notebook": "sbd_fig2_deconv_vs_sb", "claims": [claim]}
    (results / "sbd_fig2_deconv_vs_sb.json").write_text(json.dumps(record))
    (results.parent / "gpu").mkdir()
    (results.parent / "gpu" / "sbd_fig2.json").write_text(json.dumps({
        "gpu": "NVIDIA H200", "images_per_run": 216000, "replicates": 24,
        "claims": [{"id": "sbd-fig2-mig", "verdict": "not reproduced", "explanation": "DeConv above SB"}]}))
    monkeypatch.setattr(reproduce, "execute", lambda *a, **k: pytest.fail("a notebook ran"))
    assert reproduce.main(["--profile", "smoke", "--pages-only"]) == 0
    assert capsys.readouterr().out.strip() == str(results / "scorecard.md")
    page = (results / "scorecard.md").read_text()
    assert "**GPU check:** not reproduced on NVIDIA H200, 216,000 training images per run, 24 replicates" in page
