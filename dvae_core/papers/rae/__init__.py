"""From Variational to Deterministic Autoencoders (Ghosh et al., ICLR 2020, arXiv:1903.12436).

Profiles, runs, the Table 1 protocol and the claim checks of the RAE chapter.

Table 1 protocol (paper Sec. 6 and its Appendix): one model per row, all on the same networks
(:mod:`dvae_core.models.rae`), and four FIDs per model against 10,000 test images:

* **REC** — reconstructions of the test images;
* **N** — decodes of samples of N(0, I) for the VAE and WAE, and of one full-covariance Gaussian
  fitted to the training codes for every other model;
* **GMM** — decodes of samples of a 10-component full-covariance Gaussian mixture fitted to the
  training codes (ex-post density estimation, Sec. 5);
* **Interp** — decodes of the mid-points between the codes of random pairs of test images.

The paper's columns are for MNIST, CIFAR-10 and CelebA with FID on Inception features. The
embedded dataset here is Fashion-MNIST, and the default FID features come from a small classifier
trained on its labels (:mod:`dvae_core.metrics.fid`): our numbers compare models with each
other, never with the paper's absolute values. The claims are therefore about orderings.

The colour columns run when their files are on disk (nothing is downloaded): CIFAR-10's binary
batches (3×32×32, FID features from the same kind of classifier trained on its ten labels) and
CelebA's aligned JPEGs (3×64×64, no labels, so FID on Inception features: the weights file
``inception-2015-12-05.pt`` must be on disk too). :data:`DATASETS` holds each dataset's paper settings,
:func:`colour_data_status` says what is present, and :func:`dataset_table1` fills one dataset's rows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dvae_core import rules
from dvae_core.claims import Claim, gate_summary, training_budget
from dvae_core.data import make_dataset
from dvae_core.data.image_sets import ImageSet
from dvae_core.evaluate import encode_means
from dvae_core.models.rae import VARIANT_LABELS, VARIANTS, RAEConfig
from dvae_core.papers import BenchModel, paper
from dvae_core.profiles import select
from dvae_core.train import TrainConfig, throughput

PAPER = paper("rae").citation

#: (β, λ) per model: the authors' released MNIST configuration (β weighs the code penalty, the KL or
#: the MMD; λ the decoder regulariser of RAE-L2 / RAE-GP).
PAPER_WEIGHTS = {"ae": (0.0, 0.0), "rae": (5e-4, 0.0), "rae_l2": (1e-4, 1e-7), "rae_gp": (1e-4, 0.5e-7),
                 "rae_sn": (0.009, 0.0), "vae": (0.312, 0.0), "cv_vae": (0.039, 0.0), "wae": (3e-2, 0.0)}

#: The paper's Table 1 FIDs (REC, N, GMM, Interp), for the datasets it reports.
PAPER_TABLE1 = {
    "MNIST": {"vae": (18.26, 19.21, 17.66, 18.21), "cv_vae": (15.15, 33.79, 17.87, 25.12),
              "wae": (10.03, 20.42, 9.39, 14.34), "rae_gp": (14.04, 22.21, 11.54, 15.32),
              "rae_l2": (10.53, 22.22, 8.69, 14.54), "rae_sn": (15.65, 19.67, 11.74, 15.15),
              "rae": (11.67, 23.92, 9.81, 14.67), "ae": (12.95, 58.73, 10.66, 17.12)},
    "CIFAR-10": {"vae": (57.94, 106.37, 103.78, 88.62), "cv_vae": (37.74, 94.75, 86.64, 69.71),
                 "wae": (35.97, 117.44, 93.53, 76.89), "rae_gp": (32.17, 83.05, 76.33, 64.08),
                 "rae_l2": (32.24, 80.80, 74.16, 62.54), "rae_sn": (27.61, 84.25, 75.30, 63.62),
                 "rae": (29.05, 83.87, 76.28, 63.27), "ae": (30.52, 84.74, 76.47, 61.57)},
    "CelebA": {"vae": (39.12, 48.12, 45.52, 44.49), "cv_vae": (40.41, 48.87, 49.30, 44.96),
               "wae": (34.81, 53.67, 42.73, 40.93), "rae_gp": (39.71, 116.30, 45.63, 47.00),
               "rae_l2": (43.52, 51.13, 47.97, 45.98), "rae_sn": (36.01, 44.74, 40.95, 39.53),
               "rae": (40.18, 48.20, 44.68, 43.67), "ae": (40.79, 127.85, 45.10, 50.94)},
}
COLUMNS = ("REC", "N", "GMM", "Interp")
#: Models whose "N" column samples the prior N(0, I) (the others: a Gaussian fitted to their codes).
PRIOR_SAMPLED = ("vae", "wae")
RAE_VARIANTS = ("rae", "rae_l2", "rae_gp", "rae_sn")

#: (β, λ) for CIFAR-10: the authors' configuration gives RAE-L2's (β 1e-3, λ 1e-6); no CIFAR-10 value for the other
#: models is in our notes on the paper, so they reuse the MNIST weights above.
CIFAR10_WEIGHTS = {**PAPER_WEIGHTS, "rae_l2": (1e-3, 1e-6)}
#: (β, λ) for CelebA: the authors' configuration gives RAE-L2 (β 1e-4, λ 1e-7, as for MNIST) and RAE-SN (β 2.4e-3);
#: the other models reuse the MNIST weights (no CelebA value for them in our notes on the paper).
CELEBA_WEIGHTS = {**PAPER_WEIGHTS, "rae_l2": (1e-4, 1e-7), "rae_sn": (2.4e-3, 0.0)}
#: CelebA's centre crop before resizing to 64×64 (the loader's default, the WAE code's "closecrop").
CELEBA_CROP = 140


@dataclass(frozen=True)
class DatasetSettings:
    """The paper's setting for one dataset of Table 1 (the architecture is :mod:`dvae_core.models.rae`'s)."""

    paper_column: str               # the column of the paper's Table 1 (PAPER_TABLE1's key)
    latent_dim: int | None          # None: the profile's (16 in every profile, the paper's MNIST value)
    in_channels: int
    resolution: int                 # the networks' input size
    pad_to: int | None              # zero-pad the images to this size (28×28 sets only)
    source_size: int                # the data's own size: what the FID features see
    weights: dict                   # (β, λ) per model
    paper_lr: float                 # Adam's learning rate in the paper / released code (used by the paper profile)
    features: str                   # FID features: "domain" (a classifier on the labels) or "inception"


_MNIST_LIKE = DatasetSettings("MNIST", None, 1, 32, 32, 28, PAPER_WEIGHTS, 5e-4, "domain")
DATASETS = {
    "fashion_mnist": _MNIST_LIKE,
    "mnist_files": _MNIST_LIKE,
    # latent 128 (paper); the released code trains CIFAR-10 with its MNIST model function, Adam 5e-4
    "cifar10": DatasetSettings("CIFAR-10", 128, 3, 32, None, 32, CIFAR10_WEIGHTS, 5e-4, "domain"),
    # latent 64, Adam 1e-3 (paper; 70 epochs, which the profiles' step counts do not follow)
    "celeba": DatasetSettings("CelebA", 64, 3, 64, None, 64, CELEBA_WEIGHTS, 1e-3, "inception"),
}
COLOUR_DATASETS = ("cifar10", "celeba")
#: Where each colour dataset's files live under the data folder ($DVAE_DATA_DIR, default ./data).
COLOUR_DIRS = {"cifar10": "cifar-10-batches-bin", "celeba": "celeba"}
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"


def dataset_settings(dataset: str) -> DatasetSettings:
    if dataset not in DATASETS:
        raise ValueError(f"the RAE chapter has no settings for dataset {dataset!r}: choose one of {sorted(DATASETS)}")
    return DATASETS[dataset]


@dataclass(frozen=True)
class RAEProfile:
    channels: int
    latent_dim: int
    batch_size: int
    steps: int
    lr: float
    fid_samples: int            # generated images per FID, and test images they are compared with
    gmm_fit_codes: int          # training codes the ex-post densities are fitted on
    fid_repeats: int            # independent sample draws per sampled column (their spread is the FID noise)
    variants: tuple[str, ...] = VARIANTS
    train_limit: int | None = None
    celeba_train_limit: int | None = None  # CelebA's first N training images (all 162,770 are 8 GB as float32)
    classifier_epochs: int = 4  # the FID domain classifier's training epochs
    checkpoint_every: int = 1000
    dataset_lr: bool = False    # True: each dataset's paper learning rate (DatasetSettings.paper_lr) instead of lr


PROFILES = {
    "smoke": RAEProfile(channels=4, latent_dim=16, batch_size=32, steps=8, lr=5e-4, fid_samples=200,
                        gmm_fit_codes=300, fid_repeats=2, train_limit=2000, classifier_epochs=1, checkpoint_every=4),
    # 2 CPU cores: C = 8 (a 16th of the paper's width), 1,500 steps of 100 (2.5 epochs instead of 100);
    # ~850 images/s per one-thread process, RAE-GP ~370 (its double backward), two runs at a time.
    "preview": RAEProfile(channels=8, latent_dim=16, batch_size=100, steps=1500, lr=5e-4, fid_samples=10_000,
                          gmm_fit_codes=20_000, fid_repeats=3, checkpoint_every=500,
                          # 1,500 steps of 100 see 150,000 images: 30,000 faces (1.5 GB per process) give 5 passes
                          celeba_train_limit=30_000),
    # The paper's MNIST setting: C = 128, latent 16, batch 100, 100 epochs of 60,000 images, Adam 5e-4.
    # CelebA trains with Adam 1e-3 here (its paper rate); MNIST's and CIFAR-10's are 5e-4.
    "paper": RAEProfile(channels=128, latent_dim=16, batch_size=100, steps=60_000, lr=5e-4, fid_samples=10_000,
                        gmm_fit_codes=60_000, fid_repeats=3, checkpoint_every=5000,
                        dataset_lr=True),
}


def profile(name: str, seed_offset: int = 0) -> RAEProfile:
    """The profile's settings. ``seed_offset`` is accepted for the common signature: the notebooks pass their
    ``seed`` to :func:`run_configs` instead."""
    return select(PROFILES, name)


def train_set(p: RAEProfile, dataset: str = "fashion_mnist", root: str | None = None) -> ImageSet:
    return make_dataset(dataset, **dataset_kwargs(p, dataset, root, "train"))


def test_set(p: RAEProfile, dataset: str = "fashion_mnist", root: str | None = None) -> ImageSet:
    kwargs = dataset_kwargs(p, dataset, root, "test")
    kwargs["limit"] = p.fid_samples
    return make_dataset(dataset, **kwargs)


def dataset_kwargs(p: RAEProfile, dataset: str, root: str | None, split: str) -> dict:
    """``make_dataset`` arguments: 28×28 sets padded to 32×32, CelebA at 64×64 from its 140×140 centre crop."""
    settings = dataset_settings(dataset)
    kwargs = {"split": split}
    if settings.pad_to is not None:
        kwargs["pad_to"] = settings.pad_to
    if dataset == "celeba":
        kwargs.update(resolution=settings.resolution, crop=CELEBA_CROP)
    limit = p.celeba_train_limit if dataset == "celeba" and p.celeba_train_limit is not None else p.train_limit
    if split == "train" and limit is not None:
        kwargs["limit"] = limit
    if root is not None:
        kwargs["root"] = root
    return kwargs


def run_config(p: RAEProfile, variant: str, seed: int = 0, dataset: str = "fashion_mnist",
               root: str | None = None) -> TrainConfig:
    """One model of Table 1 on ``dataset`` (see :data:`DATASETS`) with the profile's width and budget."""
    settings = dataset_settings(dataset)
    beta, reg = settings.weights[variant]
    model = RAEConfig(variant=variant, latent_dim=settings.latent_dim or p.latent_dim, channels=p.channels,
                      reg_weight=reg, in_channels=settings.in_channels, resolution=settings.resolution)
    kwargs = dataset_kwargs(p, dataset, root, "train")
    lr = settings.paper_lr if p.dataset_lr else p.lr
    return TrainConfig(dataset=dataset, dataset_kwargs=kwargs, model=model, beta=beta, steps=p.steps,
                       batch_size=p.batch_size, lr=lr, seed=seed, checkpoint_every=p.checkpoint_every,
                       log_every=max(1, min(100, p.steps // 10)))


def run_configs(p: RAEProfile, seed: int = 0, **kwargs) -> list[TrainConfig]:
    return [run_config(p, variant, seed, **kwargs) for variant in p.variants]


# ------------------------------------------------------------------------------------------- evaluation
@torch.inference_mode()
def decode(model, codes: np.ndarray, batch_size: int = 128) -> torch.Tensor:
    """Decoded images of ``codes``. Batches of 128 decode ~2× faster on a CPU than batches of 1,000 (the
    transposed convolutions' activations stay in cache), with bit-identical images."""
    dev = next(model.parameters()).device
    z = torch.as_tensor(codes, dtype=torch.float32)
    return torch.cat([model.decode(z[i:i + batch_size].to(dev)).cpu() for i in range(0, len(z), batch_size)])


def midpoint_codes(codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mid-points between the codes of random pairs (each test image paired with another, at random)."""
    partner = rng.permutation(len(codes))
    return 0.5 * (codes + codes[partner])


def n_sampler_kind(variant: str) -> str:
    return "normal" if variant in PRIOR_SAMPLED else "gaussian"


def fit_subset(train: ImageSet, p: RAEProfile, rng: np.random.Generator) -> np.ndarray:
    """The training rows whose codes the ex-post densities are fitted on."""
    return rng.choice(len(train), size=min(p.gmm_fit_codes, len(train)), replace=False)


def ex_post_densities(codes: np.ndarray, variant: str, seed: int = 0) -> dict:
    """Table 1's two samplers fitted to ``codes``: "N" (N(0, I) or one Gaussian) and "GMM" (10 components)."""
    from dvae_core.metrics.density import fit_latent_density

    return {"N": fit_latent_density(codes, n_sampler_kind(variant), seed),
            "GMM": fit_latent_density(codes, "gmm", seed)}


def fid_to_test(test_stats, features, images: torch.Tensor) -> float:
    """FID between ``images`` and the test set whose feature statistics are ``test_stats``."""
    from dvae_core.metrics.fid import feature_statistics, frechet_distance

    return float(frechet_distance(*test_stats, *feature_statistics(features(images))))


#: Torch/numpy seed offset of the learning gate's draws.
GATE_SEED = 25_000
#: The gate's fixed-σ Gaussian likelihood: its NLL orders reconstructions by squared error, as the models'
#: own objective does; σ only shifts and scales it, the same for the run and the mean image.
GATE_LIKELIHOOD_STD = 0.1


def evaluate_model(run: dict, train: ImageSet, test: ImageSet, features, test_stats, p: RAEProfile,
                   seed: int = 0) -> dict:
    """The four FIDs of Table 1 for one trained model (sampled columns: mean and s.d. over draws), and the
    numbers of its learning gate (:func:`learning_numbers`)."""
    model, variant = run["model"], run["config"].model.variant
    rng = np.random.default_rng(20_000 + seed)

    def fid_of(images: torch.Tensor) -> float:
        return fid_to_test(test_stats, features, images)

    train_codes = encode_means(model, train.data[fit_subset(train, p, rng)])
    test_codes = encode_means(model, test.data)
    recon = decode(model, test_codes)
    row = {"model": VARIANT_LABELS[variant], "variant": variant,
           "REC": fid_of(recon), "recon_mse": float((recon - test.data).pow(2).mean())}
    for column, density in ex_post_densities(train_codes, variant, seed).items():
        scores = [fid_of(decode(model, density.sample(p.fid_samples, rng))) for _ in range(p.fid_repeats)]
        row[column], row[f"{column}_sd"] = float(np.mean(scores)), float(np.std(scores, ddof=1))
    scores = [fid_of(decode(model, midpoint_codes(test_codes, rng))) for _ in range(p.fid_repeats)]
    row["Interp"], row["Interp_sd"] = float(np.mean(scores)), float(np.std(scores, ddof=1))
    row["train_images_per_s"] = throughput(run["history"])
    row["final_loss"] = run["history"][-1]["loss"] if run["history"] else float("nan")
    row.update(learning_numbers(run, recon, test, fid_of, seed))
    return row


@torch.inference_mode()
def learning_numbers(run: dict, recon: torch.Tensor, test: ImageSet, fid_of, seed: int = 0) -> dict:
    """The learning gate's numbers of one model, with the code of Table 1: the REC FID of the untrained
    model (the run's model before its first step, :func:`dvae_core.train.untrained_model`, on the same test
    images); the reconstruction NLL of ``recon`` (the trained model's test reconstructions) under a fixed-σ
    Gaussian and the mean image's (:func:`dvae_core.evaluate.mean_image_nll`, estimated on one draw of the
    test images and scored on another); the KL of the models with a posterior (VAE, CV-VAE). One more
    reconstruction FID per model: ≈ a tenth of its evaluation."""
    from dvae_core.evaluate import mean_image_nll
    from dvae_core.models.likelihoods import FixedGaussian
    from dvae_core.models.vae import gaussian_kl
    from dvae_core.train import untrained_model

    model, config = run["model"], run["config"]
    untrained = untrained_model(config, str(next(model.parameters()).device))
    numbers = {"untrained_REC": fid_of(decode(untrained, encode_means(untrained, test.data)))}
    likelihood = FixedGaussian(GATE_LIKELIHOOD_STD)
    numbers["recon_nll"] = float(likelihood.nll(recon, test.data).mean())
    numbers["mean_image_nll"] = mean_image_nll(likelihood, test, len(test), np.random.default_rng(GATE_SEED + seed),
                                               sample_factors=lambda n, rng: rng.integers(0, len(test), n))
    device = next(model.parameters()).device
    kls = []
    for start in range(0, len(test), 1000):
        code, logvar = model.encode(test.data[start:start + 1000].to(device))
        if logvar is None:
            break
        kls.append(gaussian_kl(code, logvar).sum(1).cpu())
    if kls:
        numbers["kl"] = float(torch.cat(kls).mean())
    return numbers


def score_run(run: dict, p: RAEProfile, dataset: str, root: str | None, test_stats, seed: int = 0,
              inception_path: str | os.PathLike | None = None) -> dict:
    """:func:`evaluate_model` for one run, in a process that holds nothing else: reloads the data and the FID
    features (the domain classifier from the run store's cache, where the notebook trained it once)."""
    train, test = train_set(p, dataset, root), test_set(p, dataset, root)
    device = str(next(run["model"].parameters()).device)
    features, _ = feature_extractor(p, train, test, device, dataset, inception_path, cache_dir=run.get("store"))
    return evaluate_model(run, train, test, features, test_stats, p, seed)


def scorer(p: RAEProfile, dataset: str, root: str | None, test_stats, seed: int = 0,
           inception_path: str | os.PathLike | None = None):
    """``evaluate=`` for :func:`~dvae_core.sweep.get_or_train_all`: each model's four FIDs are computed on the
    worker that trained it, overlapping the other models' training; the rows are ``run["evaluation"]``."""
    return partial(score_run, p=p, dataset=dataset, root=root, test_stats=test_stats, seed=seed,
                   inception_path=inception_path)


def table1(rows: list[dict], dataset: str = "MNIST") -> pd.DataFrame:
    """Ours beside the paper's (the paper's dataset ``dataset``), one row per model in the paper's order."""
    order = ["vae", "cv_vae", "wae", "rae_gp", "rae_l2", "rae_sn", "rae", "ae"]
    ours = pd.DataFrame(rows).set_index("variant")
    paper = PAPER_TABLE1[dataset]
    records = []
    for variant in [v for v in order if v in ours.index]:
        record = {"model": VARIANT_LABELS[variant]}
        for i, column in enumerate(COLUMNS):
            record[(column, "ours")] = ours.loc[variant, column]
            record[(column, f"paper {dataset}")] = paper[variant][i]
        records.append(record)
    frame = pd.DataFrame(records).set_index("model")
    frame.columns = pd.MultiIndex.from_tuples(frame.columns)
    return frame


# ------------------------------------------------------------------------------------------- claims
#: "GMM beats N": the minimal gain, as a fraction of FID(N). Every deterministic model of the paper's Table 1
#: gains more on every dataset — its smallest gain is 6.2 % (RAE-L2 on CelebA, 51.13 → 47.97) — so a gain
#: significantly below 5 % of FID(N) is evidence against the claim. (Relative, since domain-FID values are on
#: another scale than the paper's.)
GMM_MIN_GAIN = 0.05
#: "Far worse" for the AE's N column: FID(N) at least this ratio × its GMM FID (the paper's is 58.73/10.66 = 5.5);
#: the claim's minimal effect, tested as FID(N) − ratio × FID(GMM) > 0.
FAR_WORSE_RATIO = 1.5
#: "Competitive with the VAE": a GMM FID at most this fraction above the VAE's (or below it); the claim's minimal
#: effect, tested as (1 + margin) × FID_GMM(VAE) − FID_GMM(variant) > 0 (a non-inferiority margin).
COMPETITIVE_MARGIN = 0.10
#: Sample draws a sampled column needs for a standard error.
MIN_DRAWS = 2
DETERMINISTIC_MODELS = ("ae", *RAE_VARIANTS)


def budget(p: RAEProfile) -> dict:
    """Training images per run (steps × batch size) against the paper profile's (100 epochs of 60,000)."""
    paper_profile = PROFILES["paper"]
    return training_budget(p.steps * p.batch_size, paper_profile.steps * paper_profile.batch_size)


def run_gate(row: pd.Series | dict) -> rules.Gate:
    """One model's learning gate (:func:`dvae_core.rules.learning_gate`) from its evaluation row: REC FID below
    the untrained model's (score = −FID), reconstruction NLL below the mean image's, and KL ≥ 1 nat for the
    models with a posterior. Checks whose numbers the row lacks are not applied."""
    row = dict(row)

    def number(key):
        value = row.get(key)
        return None if value is None or not np.isfinite(value) else float(value)

    rec, untrained = number("REC"), number("untrained_REC")
    return rules.learning_gate(kl=number("kl"), score=None if rec is None else -rec,
                               untrained_score=None if untrained is None else -untrained,
                               recon_nll=number("recon_nll"), mean_image_nll=number("mean_image_nll"))


def _standard_error(row: pd.Series, column: str) -> float:
    """Standard error of a sampled column's mean FID: the s.d. over its draws / √draws (NaN under MIN_DRAWS)."""
    draws = int(row["fid_repeats"])
    sd = row.get(f"{column}_sd", float("nan"))
    return float(sd) / np.sqrt(draws) if draws >= MIN_DRAWS and np.isfinite(sd) else float("nan")


def model_decision(difference: float, std_error: float, min_effect: float, gates: dict[str, rules.Gate],
                   label: str) -> rules.Outcome:
    """One model's decision of a Table 1 claim: :func:`dvae_core.rules.measured_difference` (the FID
    difference, > 0 the claim's way, against the standard error of the sample draws); inconclusive *too few
    replicas* when there is no standard error (fewer than :data:`MIN_DRAWS` draws: a point estimate is never
    decided), or *under-trained* / *collapsed* when a model of the comparison failed its learning gate."""
    rule = (f"{per_model_rule(min_effect, 'FID')}; a difference needs ≥ {MIN_DRAWS} sample draws for its standard "
            f"error; {rules.GATE_RULE}")
    failed = {name: gate for name, gate in gates.items() if not gate.passed}
    if failed:
        collapsed = sum(g.collapsed for g in failed.values())
        reason = "collapsed" if collapsed >= len(failed) - collapsed else "under-trained"
        why = "; ".join(f"{name}: {', '.join(g.failures)}" for name, g in failed.items())
        return rules.Outcome("inconclusive", rule, reason, f"{label}: failed the learning gate ({why})",
                             {"gate_failures": {name: list(g.failures) for name, g in failed.items()}})
    if not np.isfinite(std_error):
        return rules.Outcome("inconclusive", rule, "too few replicas",
                             f"{label}: fewer than {MIN_DRAWS} sample draws, no standard error",
                             {"difference": float(f"{difference:.4g}")})
    outcome = rules.measured_difference(difference, std_error, min_effect=min_effect, unit="FID",
                                        replicate="sample draws")
    return replace(outcome, rule=rule, explanation=f"{label}: {outcome.explanation}")


def per_model_rule(min_effect: float, unit: str) -> str:
    """The rule text of :func:`model_decision` (the z-test's own words), for a claim's record."""
    return rules.measured_difference(0.0, 1.0, min_effect=min_effect, unit=unit, replicate="sample draws").rule


def aggregate(decisions: dict[str, rules.Outcome], what: str, model_rule: str) -> rules.Outcome:
    """A claim over several models from their decisions: reproduced if every model's is; not reproduced if
    more than half show evidence against; inconclusive otherwise, with the commonest reason of the open
    models (``underpowered`` when they are all decided but disagree)."""
    verdicts = {name: o.verdict for name, o in decisions.items()}
    wins = sum(v == "reproduced" for v in verdicts.values())
    against = sum(v == "not reproduced" for v in verdicts.values())
    total = len(decisions)
    rule = (f"per model, {what}: {model_rule}; the claim is reproduced if every model's difference is, not "
            f"reproduced if more than half of them show evidence against it, inconclusive otherwise; "
            f"{rules.GATE_RULE}")
    explanation = f"{wins} of {total} models reproduced, {against} against — " + "; ".join(
        o.explanation for o in decisions.values())
    test = {"per_model": {name: {"verdict": o.verdict, **({"reason": o.reason} if o.reason else {}), **o.test}
                          for name, o in decisions.items()}}
    if total and wins == total:
        return rules.Outcome("reproduced", rule, None, explanation, test)
    if against > total / 2:
        return rules.Outcome("not reproduced", rule, None, explanation, test)
    reasons = [o.reason for o in decisions.values() if o.verdict == "inconclusive" and o.reason]
    reason = max(dict.fromkeys(reasons), key=reasons.count) if reasons else "underpowered"
    return rules.Outcome("inconclusive", rule, reason, explanation, test)


def _claim_fields(p: RAEProfile, seed: int, gates: list[rules.Gate]) -> dict:
    return {"paper": PAPER, "gate": gate_summary(gates), "budget": budget(p), "seeds": [seed]}


def gmm_beats_n_claim(rows: pd.DataFrame, p: RAEProfile, seed: int = 0) -> Claim:
    """For every deterministic model (AE and the RAEs), GMM sampling gives a lower FID than N sampling:
    per model, FID(N) − FID(GMM) > 0, minimal effect :data:`GMM_MIN_GAIN` × FID(N)."""
    models = [v for v in DETERMINISTIC_MODELS if v in rows.index]
    decisions, ours, gates = {}, {}, []
    for v in models:
        r = rows.loc[v]
        diff = float(r["N"] - r["GMM"])
        se = float(np.hypot(_standard_error(r, "N"), _standard_error(r, "GMM")))
        gate = run_gate(r)
        gates.append(gate)
        decisions[VARIANT_LABELS[v]] = model_decision(diff, se, GMM_MIN_GAIN * float(r["N"]),
                                                      {VARIANT_LABELS[v]: gate}, VARIANT_LABELS[v])
        ours[VARIANT_LABELS[v]] = {"N": round(float(r["N"]), 2), "GMM": round(float(r["GMM"]), 2),
                                   "se": round(se, 3)}
    outcome = aggregate(decisions, "difference = FID(N) − FID(GMM)", per_model_rule(GMM_MIN_GAIN, "× FID(N)"))
    paper = {VARIANT_LABELS[v]: {"N": PAPER_TABLE1["MNIST"][v][1], "GMM": PAPER_TABLE1["MNIST"][v][2]} for v in models}
    return Claim.decided(
        outcome, id="rae-gmm-beats-n",
        claim="Ex-post density estimation with a 10-component GMM gives better samples than a single Gaussian "
              "for the deterministic autoencoders (Table 1, GMM vs N)",
        metric=f"FID (domain features), N − GMM column, per deterministic model; standard error over "
               f"{p.fid_repeats} sample draws of one trained model each (one training seed per model)",
        paper_value=paper, ours=ours, **_claim_fields(p, seed, gates))


def ae_prior_gap_claim(rows: pd.DataFrame, p: RAEProfile, seed: int = 0) -> Claim:
    """The plain AE's N-sampling FID is far worse than its GMM FID: FID(N) − :data:`FAR_WORSE_RATIO` ×
    FID(GMM) > 0 (the ratio is the claim's minimal effect, built into the difference)."""
    r = rows.loc["ae"]
    ratio = float(r["N"] / r["GMM"])
    diff = float(r["N"] - FAR_WORSE_RATIO * r["GMM"])
    se = float(np.hypot(_standard_error(r, "N"), FAR_WORSE_RATIO * _standard_error(r, "GMM")))
    gate = run_gate(r)
    outcome = model_decision(diff, se, 0.0, {"AE": gate}, "AE")
    outcome = replace(outcome, rule=f"difference = FID(N) − {FAR_WORSE_RATIO:g} × FID(GMM) (the claim's minimal "
                                    f"ratio built in): {outcome.rule}")
    paper_n, paper_gmm = PAPER_TABLE1["MNIST"]["ae"][1:3]
    return Claim.decided(
        outcome, id="rae-ae-n-far-worse",
        claim="An unregularised AE has no usable simple latent density: its N-sampling FID is far worse than its "
              "GMM FID (Table 1)",
        metric=f"FID(N) − {FAR_WORSE_RATIO:g} × FID(GMM) of the AE; standard error over {p.fid_repeats} sample "
               f"draws of one trained model (one training seed)",
        paper_value={"N": paper_n, "GMM": paper_gmm, "ratio": round(paper_n / paper_gmm, 2)},
        ours={"N": round(float(r["N"]), 2), "GMM": round(float(r["GMM"]), 2), "ratio": round(ratio, 3),
              "se": round(se, 3)},
        **_claim_fields(p, seed, [gate]))


def rae_competitive_claim(rows: pd.DataFrame, p: RAEProfile, seed: int = 0) -> Claim:
    """Every RAE variant's GMM FID is at most (1 + :data:`COMPETITIVE_MARGIN`) × the VAE's: per variant,
    (1 + margin) × FID_GMM(VAE) − FID_GMM(variant) > 0 against the two models' draw errors. A variant (or a
    VAE) with fewer than :data:`MIN_DRAWS` draws has no standard error: its decision is inconclusive (too few
    replicas), never taken from the point estimate."""
    vae = rows.loc["vae"]
    limit = (1 + COMPETITIVE_MARGIN) * float(vae["GMM"])
    vae_se = _standard_error(vae, "GMM")
    vae_gate = run_gate(vae)
    variants = [v for v in RAE_VARIANTS if v in rows.index]
    decisions, ours, gates = {}, {}, [vae_gate]
    for v in variants:
        r = rows.loc[v]
        gate = run_gate(r)
        gates.append(gate)
        se = float(np.hypot(_standard_error(r, "GMM"), (1 + COMPETITIVE_MARGIN) * vae_se))
        decisions[VARIANT_LABELS[v]] = model_decision(limit - float(r["GMM"]), se, 0.0,
                                                      {VARIANT_LABELS[v]: gate, "VAE": vae_gate}, VARIANT_LABELS[v])
        ours[VARIANT_LABELS[v]] = round(float(r["GMM"]), 2)
    outcome = aggregate(decisions, f"difference = (1 + {COMPETITIVE_MARGIN:g}) × FID_GMM(VAE) − FID_GMM(variant) "
                                   f"(the margin, the claim's minimal effect, built in)", per_model_rule(0.0, "FID"))
    paper = {VARIANT_LABELS[v]: PAPER_TABLE1["MNIST"][v][2] for v in ("vae", *variants)}
    return Claim.decided(
        outcome, id="rae-competitive-with-vae",
        claim="Regularised deterministic autoencoders with ex-post GMM sampling are competitive with or better "
              "than the VAE (Table 1, GMM column)",
        metric=f"FID (domain features), GMM column: each RAE variant vs (1 + {COMPETITIVE_MARGIN:g}) × the VAE's; "
               f"standard errors over {p.fid_repeats} sample draws of one trained model each (one training seed "
               f"per model)",
        paper_value=paper, ours={"VAE": round(float(vae["GMM"]), 2), **ours, "limit": round(limit, 2)},
        **_claim_fields(p, seed, gates))


def table1_claims(rows: list[dict], p: RAEProfile, seed: int = 0) -> list[Claim]:
    frame = pd.DataFrame(rows).set_index("variant").assign(fid_repeats=p.fid_repeats)
    claims = [gmm_beats_n_claim(frame, p, seed)]
    if "ae" in frame.index:
        claims.append(ae_prior_gap_claim(frame, p, seed))
    if "vae" in frame.index:
        claims.append(rae_competitive_claim(frame, p, seed))
    return claims


# ------------------------------------------------------------------------------------------- FID features
def crop_to_source(images: torch.Tensor, dataset: str = "fashion_mnist") -> torch.Tensor:
    """Undo the zero-padding of a padded set (28×28 → 32×32): the FID features see the images at the data's
    own size. Sets that are not padded (CIFAR-10, CelebA) come back unchanged."""
    settings = dataset_settings(dataset)
    if settings.pad_to is None:
        return images
    size = settings.source_size
    offset = (images.shape[-1] - size) // 2
    return images[..., offset:offset + size, offset:offset + size]


def dataset_of(images: ImageSet) -> str:
    """The :data:`DATASETS` key of an image set made by :func:`train_set` / :func:`test_set` (from its name)."""
    prefix = images.name.split("/")[0]
    return prefix if prefix in DATASETS else "mnist_files"


def inception_extractor(path: str | os.PathLike | None = None, device: str = "auto"):
    """Inception features for CelebA, from the weights file on disk; a one-line error if it is not there."""
    from dvae_core.data.files import DATA_DIR_ENV
    from dvae_core.metrics.fid import INCEPTION_FILENAME, INCEPTION_URL, InceptionFeatures, inception_weights_path

    path = inception_weights_path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"CelebA's FID needs Inception features (it has no labels to train a domain classifier on), but "
            f"{INCEPTION_FILENAME} is not at {str(path)!r}: put NVIDIA's TorchScript export ({INCEPTION_URL}; this "
            f"code never downloads) at ${DATA_DIR_ENV}/{INCEPTION_FILENAME} (default ./data) or pass inception_path=")
    return InceptionFeatures(path, device)


def feature_extractor(p: RAEProfile, train: ImageSet, test: ImageSet, device: str = "auto",
                      dataset: str | None = None, inception_path: str | os.PathLike | None = None,
                      cache_dir: str | os.PathLike | None = None):
    """The FID feature function (images → (n, d) numpy) and a report of the extractor behind it.

    Labelled sets (Fashion-MNIST, MNIST-format files, CIFAR-10): a domain classifier trained on their labels,
    on the images at their own size (padding cropped off), or loaded from ``cache_dir`` (default: the run
    store) if trained before. CelebA: Inception, from ``inception_path`` (default
    ``$DVAE_DATA_DIR/inception-2015-12-05.pt``). ``dataset`` defaults to the one ``train`` was made from.
    """
    from dvae_core.metrics.fid import DomainClassifierConfig, extract_features, train_domain_classifier
    from dvae_core.infra import resolve_device

    dataset = dataset or dataset_of(train)
    settings = dataset_settings(dataset)
    if settings.features == "inception":
        extractor = inception_extractor(inception_path, device)

        def inception_features(images: torch.Tensor) -> np.ndarray:
            return extract_features(extractor, images)

        return inception_features, {"extractor": "inception", "path": str(extractor.path), "feature_dim": 2048}

    # in_channels / size at their defaults (1, 28) give exactly the Fashion-MNIST classifier (and cache key)
    config = DomainClassifierConfig(epochs=p.classifier_epochs, in_channels=settings.in_channels,
                                    size=settings.source_size)
    trained = train_domain_classifier(crop_to_source(train.data, dataset), train.labels,
                                      crop_to_source(test.data, dataset), test.labels, config,
                                      device=str(resolve_device(device)), cache_dir=cache_dir)
    classifier = trained["model"]

    def features(images: torch.Tensor) -> np.ndarray:
        return extract_features(classifier, crop_to_source(images, dataset), batch_size=2000)

    report = {"test_accuracy": trained["test_accuracy"], "train_seconds": trained["train_seconds"],
              "epochs": config.epochs, "feature_dim": config.feature_dim}
    return features, report


def real_data_fid(features, train: ImageSet, test_stats, p: RAEProfile, seed: int = 0) -> float:
    """FID between ``fid_samples`` training images and the test images: the floor of every model's FID."""
    index = np.random.default_rng(seed).choice(len(train), size=min(p.fid_samples, len(train)), replace=False)
    return fid_to_test(test_stats, features, train.data[index])


# ------------------------------------------------------------------------------------------- colour columns
def data_root(dataset: str, data_dir: str | os.PathLike | None = None) -> Path:
    """The folder a colour dataset's loader reads: ``<data_dir>/cifar-10-batches-bin`` or ``<data_dir>/celeba``,
    ``data_dir`` defaulting to ``$DVAE_DATA_DIR`` (default ./data)."""
    from dvae_core.data.files import default_data_path

    if dataset not in COLOUR_DIRS:
        raise ValueError(f"{dataset!r} is not a colour dataset of Table 1: choose one of {COLOUR_DATASETS}")
    folder = COLOUR_DIRS[dataset]
    return Path(data_dir) / folder if data_dir is not None else default_data_path(folder)


def colour_data_status(data_dir: str | os.PathLike | None = None,
                       inception_path: str | os.PathLike | None = None) -> dict[str, str | None]:
    """Per colour dataset: None when its Table 1 columns can run here, else one line saying what is absent
    and where it goes. Only checks that the files exist (nothing is read or downloaded)."""
    from dvae_core.data.image_sets import CELEBA_IMAGES, CELEBA_PARTITION, CELEBA_URL, CIFAR10_FILES, _celeba_root
    from dvae_core.metrics.fid import INCEPTION_FILENAME, INCEPTION_URL, inception_weights_path

    status: dict[str, str | None] = {}
    cifar = data_root("cifar10", data_dir)
    files = CIFAR10_FILES["train"] + CIFAR10_FILES["test"]
    missing = [name for name in files if not (cifar / name).is_file()]
    status["cifar10"] = None if not missing else (
        f"CIFAR-10: absent ({len(missing)} of {len(files)} files missing) — put the binary version's "
        f"data_batch_1.bin … data_batch_5.bin and test_batch.bin (cifar-10-binary.tar.gz, {CIFAR10_URL}) in {cifar}/")
    celeba = Path(_celeba_root(data_root("celeba", data_dir)))
    inception = inception_weights_path(inception_path)
    if not (celeba / CELEBA_IMAGES).is_dir() or not (celeba / CELEBA_PARTITION).is_file():
        status["celeba"] = (f"CelebA: absent — put {CELEBA_IMAGES}/ (000001.jpg …) and {CELEBA_PARTITION} "
                            f"({CELEBA_URL}) in {celeba}/")
    elif not inception.is_file():
        status["celeba"] = (f"CelebA: files present in {celeba}/ but its FID needs Inception features — put "
                            f"{INCEPTION_FILENAME} ({INCEPTION_URL}) at {inception}")
    else:
        status["celeba"] = None
    return status


def available_colour_datasets(data_dir: str | os.PathLike | None = None,
                              inception_path: str | os.PathLike | None = None) -> list[str]:
    """The colour datasets whose Table 1 columns can run here (their files, and CelebA's Inception weights)."""
    return [name for name, why in colour_data_status(data_dir, inception_path).items() if why is None]


def dataset_table1(p: RAEProfile, dataset: str, seed: int = 0, device: str = "auto",
                   data_dir: str | os.PathLike | None = None, inception_path: str | os.PathLike | None = None,
                   store: str | os.PathLike | None = None) -> dict:
    """Train (or reuse) the profile's models on ``dataset`` and evaluate Table 1 on it.

    Returns ``rows`` (one :func:`evaluate_model` dict per model, for :func:`table1`), ``paper_column`` (the
    paper's column to show beside them: ``table1(out["rows"], out["paper_column"])``), ``dataset`` (the
    training set's name), ``features`` (the extractor's report) and ``floor`` (FID of training vs test images).
    ``data_dir`` is a data folder holding ``cifar-10-batches-bin/`` / ``celeba/`` (default ``$DVAE_DATA_DIR``;
    for the 28×28 sets it is their folder of idx files, as ``data_root`` of the notebook).
    """
    from dvae_core.metrics.fid import feature_statistics
    from dvae_core.sweep import get_or_train_all

    settings = dataset_settings(dataset)
    if dataset in COLOUR_DATASETS:
        root = None if data_dir is None else str(data_root(dataset, data_dir))
    else:
        root = None if data_dir is None else str(data_dir)
    train, test = train_set(p, dataset, root), test_set(p, dataset, root)
    features, report = feature_extractor(p, train, test, device, dataset, inception_path, cache_dir=store)
    test_stats = feature_statistics(features(test.data))
    floor = real_data_fid(features, train, test_stats, p, seed)
    runs = get_or_train_all(run_configs(p, seed=seed, dataset=dataset, root=root),
                            store=Path(store) if store is not None else None, device=device,
                            evaluate=scorer(p, dataset, root, test_stats, seed, inception_path))
    rows = [run["evaluation"] for run in runs]
    return {"dataset": train.name, "paper_column": settings.paper_column, "rows": rows, "features": report,
            "floor": floor}


# ------------------------------------------------------------------------------------------- figures
def plot_fid_table(rows: list[dict], floor: float | None = None):
    """Grouped bars: one group per model, one bar per Table 1 column (error bars: s.d. over draws)."""
    import matplotlib.pyplot as plt

    frame = pd.DataFrame(rows).set_index("model")
    fig, ax = plt.subplots(figsize=(9, 3.6))
    width = 0.2
    x = np.arange(len(frame))
    for i, column in enumerate(COLUMNS):
        errors = frame[f"{column}_sd"] if f"{column}_sd" in frame else None
        ax.bar(x + (i - 1.5) * width, frame[column], width, yerr=errors, capsize=2, label=column)
    if floor is not None:
        ax.axhline(floor, color="0.3", ls="--", lw=1, label="train vs test")
    ax.set_xticks(x, frame.index)
    ax.set_ylabel("FID (domain features, lower is better)")
    ax.set_xlabel("model")
    ax.set_title("Table 1 on our data: reconstructions, samples and interpolations")
    ax.legend(ncol=5, fontsize=8)
    fig.tight_layout()
    return fig


def fit_densities(runs: dict, train: ImageSet, p: RAEProfile, seed: int = 0) -> dict:
    """Per model: its training codes and the N and GMM densities fitted as in Table 1."""
    from dvae_core.metrics.density import fit_latent_density

    index = fit_subset(train, p, np.random.default_rng(20_000 + seed))
    out = {}
    for variant, run in runs.items():
        codes = encode_means(run["model"], train.data[index])
        out[variant] = {"codes": codes, "labels": train.labels[index], **ex_post_densities(codes, variant, seed),
                        "gaussian": fit_latent_density(codes, "gaussian", seed)}
    return out


def sample_grid(runs: dict, densities: dict, num: int = 10, seed: int = 0):
    """Rows: model × sampler; columns: ``num`` decoded samples."""
    from dvae_core.plots import image_grid

    rows, labels = [], []
    for variant, run in runs.items():
        for sampler in ("N", "GMM"):
            rng = np.random.default_rng(30_000 + seed)
            rows.append(decode(run["model"], densities[variant][sampler].sample(num, rng)))
            labels.append(f"{VARIANT_LABELS[variant]} · {sampler}")
    return image_grid(rows, labels, cell=0.7)


def interpolation_strips(runs: dict, test: ImageSet, pairs: list[tuple[int, int]], steps: int = 8,
                         variants: tuple[str, ...] = ("ae", "rae", "vae")):
    """Rows: (pair, model); columns: decodes of (1 − t)·z_a + t·z_b for t from 0 to 1."""
    from dvae_core.plots import image_grid

    t = np.linspace(0.0, 1.0, steps)[:, None]
    rows, labels = [], []
    for a, b in pairs:
        for variant in variants:
            codes = encode_means(runs[variant]["model"], test.data[[a, b]])
            rows.append(decode(runs[variant]["model"], (1 - t) * codes[0] + t * codes[1]))
            labels.append(f"{VARIANT_LABELS[variant]} · pair {a}–{b}")
    return image_grid(rows, labels, [f"t={v:.2f}" for v in t[:, 0]], cell=0.75)


def _ellipse(ax, mean: np.ndarray, cov: np.ndarray, **style) -> None:
    from matplotlib.patches import Ellipse

    values, vectors = np.linalg.eigh(cov)
    angle = np.degrees(np.arctan2(vectors[1, -1], vectors[0, -1]))
    width, height = 2 * 2.0 * np.sqrt(np.maximum(values[::-1], 0))  # 2 s.d. along each principal axis
    ax.add_patch(Ellipse(mean, width, height, angle=angle, fill=False, **style))


def latent_density_view(runs: dict, densities: dict, test: ImageSet, variants: tuple[str, ...] = ("ae", "rae", "vae"),
                        num_points: int = 3000):
    """Test codes on their first two principal components, with the GMM's and the single Gaussian's
    2-s.d. ellipses projected on the same plane."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(variants), figsize=(4.2 * len(variants), 4.0), squeeze=False)
    for ax, variant in zip(axes[0], variants):
        fitted = densities[variant]
        codes = encode_means(runs[variant]["model"], test.data[:num_points])
        center = fitted["codes"].mean(0)
        _, _, components = np.linalg.svd(fitted["codes"] - center, full_matrices=False)
        plane = components[:2].T  # (d, 2): the training codes' top two principal directions
        xy = (codes - center) @ plane
        ax.scatter(xy[:, 0], xy[:, 1], c=test.labels[:num_points], cmap="tab10", s=3, alpha=0.5)
        gmm = fitted["GMM"]
        for weight, mean, cov in zip(gmm.weights, gmm.means, gmm.covariances):
            _ellipse(ax, (mean - center) @ plane, plane.T @ cov @ plane, color="k", lw=0.5 + 6 * weight)
        gaussian = fitted["gaussian"]
        _ellipse(ax, (gaussian.means[0] - center) @ plane, plane.T @ gaussian.covariances[0] @ plane, color="tab:red",
                 ls="--", lw=1.5)
        if variant in PRIOR_SAMPLED:
            _ellipse(ax, -center @ plane, plane.T @ plane, color="0.5", lw=1.5)
        ax.set_title(VARIANT_LABELS[variant])
        ax.set_xlabel("principal component 1 of the codes")
        ax.set_ylabel("principal component 2")
        ax.set_aspect("equal", adjustable="datalim")
    fig.tight_layout()
    return fig


def bench_config(name: str) -> TrainConfig:
    """The run ``dvae_core.bench`` times under profile ``name``: the plain RAE of Table 1."""
    return run_config(profile(name), "rae")


BENCH_MODELS = {"rae": BenchModel("RAE", "rae.run_config(rae.profile(profile), 'rae')", bench_config)}
