"""python -m dvae_core.score: all five metrics from files on a full grid or from a run; bad input is one line."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from dvae_core import runs, score
from dvae_core.models import VAEConfig
from dvae_core.train import TrainConfig

SMALL = ["--num-train", "600", "--num-test", "300"]


@pytest.fixture
def grid_files(tmp_path):
    rng = np.random.default_rng(0)
    factors = np.array(list(itertools.product(range(5), range(4), range(2), range(6))))
    codes = np.concatenate([factors + 0.05 * rng.normal(size=factors.shape), rng.normal(size=(len(factors), 2))], 1)
    np.savez(tmp_path / "codes.npz", codes=codes)
    np.savez(tmp_path / "factors.npz", factors=factors)
    return tmp_path / "codes.npz", tmp_path / "factors.npz", codes, factors


def test_codes_that_copy_a_full_grid_score_one_on_every_intervention_and_dci_metric(grid_files, capsys):
    codes_path, factors_path, _, _ = grid_files
    assert score.main(["--codes", str(codes_path), "--factors", str(factors_path), "--json", *SMALL]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["factor_vae"] == 1.0 and out["beta_vae"] == pytest.approx(1.0, abs=0.01)
    assert out["dci_disentanglement"] > 0.99 and out["dci_completeness"] > 0.99 and out["dci_informativeness"] == 1.0
    assert out["mig"] > 0.7 and 0 < out["sap"] <= 1 and out["note"] is None


def test_the_code_table_serves_a_grid_points_own_codes(grid_files):
    _, _, codes, factors = grid_files
    table = score.CodeTable(codes, factors)
    order = np.random.default_rng(1).permutation(len(factors))[:17]
    np.testing.assert_array_equal(table.encode(table.images(factors[order])), codes[order])
    assert score.CodeTable.covers_grid(factors) and not score.CodeTable.covers_grid(factors[1:])
    assert not score.CodeTable.covers_grid(np.concatenate([factors[:-1], factors[:1]]))  # one point twice


def test_factors_off_a_grid_leave_out_the_intervention_metrics_and_say_why(grid_files, tmp_path, capsys):
    _, _, codes, factors = grid_files
    np.savez(tmp_path / "c.npz", codes[10:])
    np.savez(tmp_path / "f.npz", factors[10:])
    assert score.main(["--codes", str(tmp_path / "c.npz"), "--factors", str(tmp_path / "f.npz"), *SMALL]) == 0
    text = capsys.readouterr().out
    assert "MIG" in text and "SAP" in text and "FactorVAE metric (eval" not in text
    assert "FactorVAE and β-VAE metrics left out" in text


def test_a_score_is_placed_among_the_books_runs_on_its_dataset(tmp_path):
    (tmp_path / "fvae_tradeoff.json").write_text(json.dumps(
        {"runs": [{"mig": 0.1, "factor_score": 0.5}, {"mig": 0.3, "factor_score": 0.7}]}))
    lines = score.book_placement("dsprites", {"mig": 0.2, "factor_vae": 0.9}, tmp_path)
    assert lines[0] == ("MIG: the book's 2 preview runs on dsprites have median 0.200 (range 0.100–0.300); "
                        "yours is above 50% of them")
    assert "above 100%" in lines[1]
    assert "no book runs" in score.book_placement("mnist", {"mig": 0.2}, tmp_path)[0]


def test_a_trained_run_is_scored_on_fresh_draws_of_its_own_dataset(tmp_path, capsys):
    model = VAEConfig(decoder="deconv", latent_dim=3, in_channels=1, resolution=32, encoder_channels=4,
                      decoder_channels=4, hidden=16)
    config = TrainConfig(dataset="dsprites", dataset_kwargs={"resolution": 32}, model=model, steps=4, batch_size=8,
                         seed=0, checkpoint_every=4, log_every=2)
    runs.get_or_train(config, store=tmp_path, device="cpu", progress=False)
    folder = runs.run_dir(config, tmp_path)
    assert score.main(["--run", str(folder), "--json", "--num-train", "100", "--num-test", "50"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["dataset"] == "dsprites"
    assert set(score.LABELS) <= set(out) and all(0 <= out[k] <= 1 for k in score.LABELS)
    assert "mig_sampled" in out and out["mig_histogram"] == out["mig"]


def test_the_estimator_panel_scores_the_same_points_both_ways_when_the_posterior_stds_are_given(grid_files, capsys):
    codes_path, factors_path, codes, _ = grid_files
    argv = ["--codes", str(codes_path), "--factors", str(factors_path), *SMALL]
    assert score.main(argv) == 0
    text = capsys.readouterr().out
    assert "20-bin histogram of the posterior means" in text and "left out (codes.npz holds no 'stds'" in text
    np.savez(codes_path, codes=codes, stds=np.full_like(codes, 0.1))
    assert score.main(argv + ["--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["mig_histogram"] == out["mig"] and 0.8 < out["mig_sampled"] <= 1.0
    assert score.main(argv) == 0
    text = capsys.readouterr().out
    assert "sampled posterior q(z | x) (Chen et al.'s own estimator)" in text and "Why they differ" in text


@pytest.mark.parametrize("make_argv, message", [
    (lambda p: ["--codes", str(p / "logvar.npz"), "--factors", str(p / "f.npz")], "not log-variances"),
    (lambda p: [], "error: give --codes codes.npz with --factors factors.npz, or --run runs/<hash>"),
    (lambda p: ["--codes", str(p / "missing.npz"), "--factors", str(p / "f.npz")], "missing.npz: no such file"),
    (lambda p: ["--codes", str(p / "two.npz"), "--factors", str(p / "f.npz")], "none named 'codes'"),
    (lambda p: ["--codes", str(p / "short.npz"), "--factors", str(p / "f.npz")], "they must be the same points"),
    (lambda p: ["--codes", str(p / "text.npz"), "--factors", str(p / "f.npz")], "not a numpy .npz archive"),
    (lambda p: ["--run", str(p)], "no config.json, so not a run folder"),
])
def test_bad_input_is_one_error_line_naming_the_file(tmp_path, capsys, make_argv, message):
    np.savez(tmp_path / "f.npz", factors=np.zeros((6, 1), dtype=int))
    np.savez(tmp_path / "two.npz", a=np.zeros((6, 2)), b=np.zeros((6, 2)))
    np.savez(tmp_path / "short.npz", codes=np.zeros((5, 2)))
    np.savez(tmp_path / "logvar.npz", codes=np.zeros((6, 2)), stds=-np.ones((6, 2)))
    (tmp_path / "text.npz").write_text("not an archive")
    assert score.main(make_argv(tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
