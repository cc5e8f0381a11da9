"""Fast tests of dvae_core.papers.factorvae.metric: tagged images, constructed codes, scoring, claims.

The scoring tests use a tiny synthetic grid of five factors (binary "images" drawn from the
factor classes) instead of dSprites, so the whole file runs in seconds.
"""

from __future__ import annotations

import math
from dataclasses import replace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from dvae_core.data.base import FactorDataset  # noqa: E402
from dvae_core.papers.factorvae import metric as fv  # noqa: E402

torch.set_num_threads(1)

SIZES = (3, 4, 5, 6, 7)
K = len(SIZES)


class BitImages(FactorDataset):
    """A small grid whose 1×8×8 binary image has a bar of length c_k + 1 in row k (grey if ``grey``)."""

    name = "bits"

    def __init__(self, sizes=SIZES, grey: bool = False):
        self.factor_sizes = tuple(sizes)
        self.factor_names = tuple(f"f{k}" for k in range(len(sizes)))
        self.image_shape = (1, 8, 8)
        self.grey = grey

    def images(self, factors):
        factors = self._check_factors(factors)
        out = torch.zeros(len(factors), 1, 8, 8)
        classes = torch.from_numpy(np.ascontiguousarray(factors))
        bars = torch.arange(8)[None, None, :] <= classes[:, :, None]  # (n, K, 8)
        out[:, 0, :self.num_factors] = bars.float() * (0.5 if self.grey else 1.0)
        return out


def small_profile(**kwargs) -> fv.MetricProfile:
    base = dict(resolution=8, num_train=400, num_eval=400, num_variance_estimate=1000, mig_samples=1000,
                batch_size=32, prerender=False, rotations=2, rotation_votes=(100, 100))
    return fv.MetricProfile(**{**base, **kwargs})


@pytest.fixture(scope="module")
def tagged():
    return fv.FactorTagged(BitImages())


@pytest.fixture(scope="module")
def scores(tagged):
    codes = fv.standard_codes(tagged)
    p = small_profile()
    out = {name: fv.score_code(tagged, codes[name], p, 0) for name in ("perfect", "mixed", "dropped")}
    # The rescaled code only needs its FactorVAE votes here (its β-VAE fit on features spanning two decades
    # runs lbfgs to its iteration limit: seconds we do not need to spend in a unit test).
    factor = fv.factor_vae_score(tagged, codes["rescaled"].encoder(tagged), np.random.default_rng(0), p.batch_size,
                                 p.num_train, p.num_eval, p.num_variance_estimate)
    out["rescaled"] = {"factor": factor, "factor_vae_eval": factor["eval_accuracy"]}
    return out


# --------------------------------------------------------------------------- profiles


def test_preview_and_paper_use_disentanglement_lib_defaults():
    for profile in ("preview", "paper"):
        p = fv.profile(profile)
        assert (p.num_train, p.num_eval, p.batch_size, p.num_variance_estimate, p.mig_samples) == \
            (10_000, 5_000, 64, 10_000, 10_000)
    assert fv.profile("paper").resolution == 64
    smoke = fv.profile("smoke")
    assert smoke.num_train < 1000 and not smoke.prerender
    with pytest.raises(ValueError, match="unknown profile"):
        fv.profile("huge")


def test_sweep_profile_swaps_in_the_sweep_votes():
    q = fv.sweep_profile(fv.profile("preview"))
    assert (q.num_train, q.num_eval) == fv.profile("preview").rotation_votes
    assert q.num_variance_estimate <= 2 * q.num_train and q.batch_size == 64


def test_metric_dataset_is_tagged_dsprites():
    ds = fv.metric_dataset(fv.profile("smoke"))
    assert ds.image_shape == (2, 32, 32) and ds.factor_sizes == (3, 6, 40, 32, 32)
    factors = np.array([[2, 5, 39, 31, 31], [0, 0, 0, 0, 0]])
    images = ds.images(factors)
    np.testing.assert_array_equal(ds.read_factors(images), factors)
    assert torch.equal(ds.pixels(images), ds.base.images(factors))


# --------------------------------------------------------------------------- tagged images


def test_tag_round_trips_and_keeps_the_pixels(tagged):
    factors = tagged.sample_factors(50, np.random.default_rng(0))
    images = tagged.images(factors)
    assert images.shape == (50, 2, 8, 8)
    np.testing.assert_array_equal(tagged.read_factors(images), factors)
    assert torch.equal(tagged.pixels(images), tagged.base.images(factors))
    assert images[:, -1, 1:].abs().sum() == 0 and images[:, -1, 0, K:].abs().sum() == 0


def test_tag_needs_room_and_checks_its_input(tagged):
    class Narrow(BitImages):
        def __init__(self):
            super().__init__()
            self.image_shape = (1, 8, 3)

    with pytest.raises(ValueError, match="no room"):
        fv.FactorTagged(Narrow())
    with pytest.raises(ValueError, match="tagged images"):
        tagged.read_factors(torch.zeros(2, 1, 8, 8))


def test_prerender_gives_bit_identical_images():
    direct, cached = fv.FactorTagged(BitImages()), fv.FactorTagged(BitImages(), prerender=True)
    factors = direct.sample_factors(300, np.random.default_rng(1))
    assert torch.equal(direct.images(factors), cached.images(factors))
    assert cached._packed is not None and cached._packed.shape == (len(cached), 8)


def test_prerender_refuses_grey_images():
    with pytest.raises(ValueError, match="binary"):
        fv.FactorTagged(BitImages(grey=True), prerender=True).images(np.zeros((1, K), dtype=np.int64))


# --------------------------------------------------------------------------- constructed codes


def test_hashed_normal_is_a_pure_function_of_seed_index_and_dim():
    index = np.arange(20_000)
    z = fv.hashed_normal(index, 3, seed=0)
    np.testing.assert_array_equal(fv.hashed_normal(index[[7, 3, 7]], 3, 0), z[[7, 3, 7]])
    np.testing.assert_array_equal(fv.hashed_normal(index[:5], 2, 0), z[:5, :2])  # dims independent of width
    assert not np.allclose(fv.hashed_normal(index[:100], 3, seed=1), z[:100])
    assert np.abs(z.mean(0)).max() < 0.05 and np.abs(z.std(0) - 1).max() < 0.05
    assert np.abs(np.corrcoef(z.T) - np.eye(3)).max() < 0.05
    assert np.abs(np.corrcoef(z[:-1, 0], z[1:, 0])[0, 1]) < 0.05  # neighbouring indices unrelated


def test_standardised_factors_have_zero_mean_unit_variance_on_the_grid(tagged):
    grid = tagged.index_to_factors(np.arange(len(tagged)))
    u = fv.standardised_factors(grid, SIZES)
    np.testing.assert_allclose(u.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(u.var(0), 1, atol=1e-12)


def test_standard_codes_have_the_documented_structure(tagged):
    codes = fv.standard_codes(tagged, mix=0.5)
    assert {c: codes[c].dims for c in codes} == {"perfect": K, "mixed": K - 1, "dropped": K - 1, "rotated": K,
                                                 "nuisance": K + 1, "rescaled": K}
    mixed = codes["mixed"].mixing
    np.testing.assert_array_equal(mixed[:, :-1], np.eye(K)[:-1, :-1])
    np.testing.assert_array_equal(mixed[:, -1], [0.5, 0.5] + [0] * (K - 3))
    assert np.abs(codes["dropped"].mixing[:, -1]).sum() == 0
    r = codes["rotated"].mixing
    np.testing.assert_allclose(r @ r.T, np.eye(K), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0)
    assert np.abs(codes["nuisance"].mixing[-1]).sum() == 0 and codes["nuisance"].noise[-1] == 1.0
    with pytest.raises(ValueError, match="at least 3"):
        fv.standard_codes(fv.FactorTagged(BitImages((3, 4))))


def test_encoder_reads_the_tag_and_is_deterministic(tagged):
    code = fv.standard_codes(tagged)["perfect"]
    encode = code.encoder(tagged)
    factors = tagged.sample_factors(64, np.random.default_rng(2))
    z = encode(tagged.images(factors))
    u = fv.standardised_factors(factors, SIZES)
    assert z.shape == (64, K)
    assert np.abs(z - u).max() < 6 * fv.NOISE and np.abs(z - u).max() > 0
    np.testing.assert_array_equal(encode(tagged.images(factors[::-1])), z[::-1])  # per image, not per batch


def test_distinct_argmin():
    assert fv.distinct_argmin(np.eye(4))
    assert fv.distinct_argmin(np.diag([100.0, 0.1, 3.0]))
    shared = np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])  # factors 0 and 1 both empty z0 most
    assert not fv.distinct_argmin(shared)
    assert not fv.distinct_argmin(np.array([[1.0, 1.0], [1.0, 1.0]]))
    assert fv.distinct_argmin(np.vstack([np.eye(3), np.zeros(3)]))  # a nuisance row (all zero) is never chosen


# --------------------------------------------------------------------------- scoring


def test_perfect_code_scores_one(scores):
    s = scores["perfect"]
    assert s["beta_vae_eval"] == 1.0 and s["factor_vae_eval"] == 1.0 and s["active_dims"] == K
    assert 0.5 < s["mig"] <= 1.0


@pytest.mark.parametrize("name", ["mixed", "dropped"])
def test_all_but_one_codes_show_the_failure_mode(scores, name):
    s = scores[name]
    tol = fv.binomial_tolerance((K - 1) / K, 400, sds=4)
    assert s["beta_vae_eval"] >= 0.98
    assert abs(s["factor_vae_eval"] - (K - 1) / K) < tol
    assert s["factor"]["classifier"].tolist() == list(range(K - 1))  # no dimension is given to the last factor


def test_rescaled_code_votes_exactly_like_the_perfect_code(scores):
    for key in ("train_votes", "eval_votes"):
        np.testing.assert_array_equal(scores["rescaled"]["factor"][key], scores["perfect"]["factor"][key])


def test_score_table_and_vote_helpers(tagged, scores):
    full = {k: v for k, v in scores.items() if k != "rescaled"}
    table = fv.score_table(full)
    assert list(table.index) == list(full) and {"beta_vae_eval", "factor_vae_eval", "mig"} <= set(table.columns)
    code = fv.standard_codes(tagged)["perfect"]
    encode = code.encoder(tagged)
    rng = np.random.default_rng(0)
    variances = fv.global_variances(tagged, encode, 500, rng)
    for k in range(K):
        vote = fv.factor_vae_vote(tagged, encode, k, variances, rng, 32)
        assert (vote["factors"][:, k] == vote["factors"][0, k]).all() and vote["vote"] == k
        feature = fv.beta_vae_feature(tagged, encode, k, rng, 32)
        assert (feature["factors1"][:, k] == feature["factors2"][:, k]).all()
        assert np.argmin(feature["feature"]) == k
    features, labels = fv.beta_vae_features(tagged, encode, rng, 16, 50)
    means = fv.mean_feature_by_factor(features, labels, K)
    assert means.shape == (K, K)
    seen = np.isin(np.arange(K), labels)
    np.testing.assert_array_equal(np.nanargmin(means[seen], axis=1), np.arange(K)[seen])


def test_perfect_and_all_but_one_codes_on_real_dsprites():
    """The same construction on procedural dSprites (16×16 to keep it quick), through the real renderer."""
    p = replace(fv.profile("smoke"), resolution=16, num_train=300, num_eval=300, num_variance_estimate=1000,
                mig_samples=2000)
    dataset = fv.metric_dataset(p)
    codes = fv.standard_codes(dataset)
    perfect, mixed = (fv.score_code(dataset, codes[name], p) for name in ("perfect", "mixed"))
    assert perfect["factor_vae_eval"] == 1.0 and perfect["beta_vae_eval"] > 0.97
    assert mixed["beta_vae_eval"] > 0.97
    assert abs(mixed["factor_vae_eval"] - 0.8) < fv.binomial_tolerance(0.8, 300, sds=4)


def test_rotation_sweep_rows(tagged):
    sweep = fv.rotation_sweep(tagged, small_profile(), 0)
    assert list(sweep.rotation) == [0, 1]
    assert sweep[["beta_vae_eval", "factor_vae_eval", "mig"]].apply(lambda c: c.between(0, 1).all()).all()


# --------------------------------------------------------------------------- claims


def fake(beta: float, factor: float) -> dict:
    return {"beta_vae_eval": beta, "factor_vae_eval": factor}


def test_beta_failure_claim_is_a_check():
    tol = fv.binomial_tolerance(0.8, 5000)
    assert tol == pytest.approx(3 * math.sqrt(0.16 / 5000))
    verdict = lambda b, f, n=5000: fv.beta_failure_claim({"mixed": fake(b, f)}, "mixed", 5, n).verdict  # noqa: E731
    assert verdict(1.0, 0.80) == "passed"
    assert verdict(0.99, 0.8 + tol * 0.99) == "passed"
    assert verdict(0.98, 0.80) == "failed"
    assert verdict(1.0, 0.8 + tol * 1.01) == "failed"
    too_few = fv.beta_failure_claim({"mixed": fake(1.0, 0.8)}, "mixed", 5, 100)  # tol 0.12 > 0.05: cannot tell
    assert too_few.verdict == "failed" and "too few evaluation votes" in too_few.explanation
    claim = fv.beta_failure_claim({"dropped": fake(1.0, 0.8)}, "dropped", 5, 5000)
    assert claim.id == "fvae-metric-beta-failure-dropped" and "not encoded" in claim.claim
    assert claim.kind == "check" and claim.reason is None and claim.budget is None and claim.seeds == []


def test_ranking_claim_is_a_check():
    def claim(a, b, n=5000):
        return fv.ranking_claim({"perfect": fake(1, a), "mixed": fake(1, b)}, n)

    assert claim(1.0, 0.8).verdict == "passed" and claim(1.0, 0.8).kind == "check"
    assert claim(0.8, 0.8).verdict == "failed"
    assert claim(0.7, 0.8).verdict == "failed"
    within = claim(0.81, 0.80, n=100)  # a positive difference inside three standard errors does not pass
    assert within.verdict == "failed" and "not above" in within.explanation


def test_rescaling_claim_is_a_check(scores):
    assert fv.rescaling_claim(scores).verdict == "passed"
    wrong_votes = {**scores["rescaled"]["factor"], "eval_votes": scores["mixed"]["factor"]["eval_votes"]}
    broken = {**scores, "rescaled": {**scores["rescaled"], "factor": wrong_votes}}
    failed = fv.rescaling_claim(broken)
    assert failed.verdict == "failed" and "eval identical: False" in failed.explanation


def test_metric_claims_and_figures_run(tagged, scores):
    claims = fv.metric_claims(scores, K, 400)  # 400 eval votes: tol 0.06 > 0.05, too few to check the failure mode
    assert [c.verdict for c in claims] == ["failed", "failed", "passed", "passed"]
    assert all(c.kind == "check" for c in claims)
    codes = fv.standard_codes(tagged)
    table = fv.score_table({k: v for k, v in scores.items() if k != "rescaled"})
    fv.plot_scores(table, K)
    fv.plot_vote_matrices(scores, codes, tagged.factor_names, ["perfect", "mixed"])
    features = {n: np.abs(np.random.default_rng(0).standard_normal((K, codes[n].dims))) for n in ("perfect", "mixed")}
    fv.plot_beta_features(features, scores, tagged.factor_names)
    sweep = fv.rotation_sweep(tagged, small_profile(rotations=1), 0)
    fv.plot_rotation_sweep(sweep, table)
    fig, axes = plt.subplots(1, 2)
    encode = codes["mixed"].encoder(tagged)
    rng = np.random.default_rng(0)
    vote = fv.factor_vae_vote(tagged, encode, K - 1, fv.global_variances(tagged, encode, 200, rng), rng, 16)
    fv.plot_one_vote(axes, codes["mixed"], vote, fv.beta_vae_feature(tagged, encode, K - 1, rng, 16),
                     tagged.factor_names, K - 1)
    assert fv.dim_labels(codes["mixed"], tagged.factor_names)[0] == "z0\nf0+f4"
    assert fv.dim_labels(codes["nuisance"], tagged.factor_names)[-1] == f"z{K}\nnoise"
    plt.close("all")
