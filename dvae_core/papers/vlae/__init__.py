"""Variational Lossy Autoencoder (Chen et al., ICLR 2017, arXiv:1611.02731).

Profiles, runs, the NLL table and the claim checks of the VLAE chapter.

The models of the paper's comparisons, all on statically binarised Fashion-MNIST by default
(the paper's Table 1 is statically binarised MNIST; Appendix D dynamically binarised MNIST):

* ``vae`` — factorised Bernoulli decoder, Gaussian prior and posterior;
* ``vae_iaf`` — the same with an IAF posterior; ``vae_af`` — with an AF prior of the same size
  (same flow steps and widths): the paper's "AF prior vs IAF posterior" (Sec. 3.2, Table 1);
* ``pixelcnn`` — the PixelCNN alone (no latent), the paper's unconditional baseline;
* ``pixelcnn_gaussian`` — PixelCNN decoder + Gaussian prior, and ``vlae`` — PixelCNN decoder + AF
  prior (Appendix D's comparison; the VLAE of Table 1).

NLL is −log p(x) in nats per image by importance sampling (:mod:`dvae_core.metrics.nll`), on the
same test images for every model, so two models are compared image by image.

Verdicts (:mod:`dvae_core.rules`, one-sided α = 0.05). The NLL claims train every model of the table on
``training_seeds`` seeds; the two models of a comparison at one seed are a pair, and the claim is an exact
signed-rank test over seeds of the pairs' NLL differences (:func:`dvae_core.rules.paired`), so the spread
is training's, not only the test images'. The receptive-field claim trains every window of the sweep on the same
seeds; per seed, Spearman's ρ between the windows' receptive fields and their KLs, and the claim is an exact
signed-rank test of −ρ over seeds (:func:`dvae_core.rules.one_sample`). A run enters a test only if it passes its
learning gate (:func:`run_gate`); a seed (or seed pair) whose run fails leaves the test, and a test the gate
leaves too few seeds is inconclusive (under-trained, or collapsed).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from dvae_core import rules
from dvae_core.claims import Claim, gate_summary, training_budget
from dvae_core.data import make_dataset
from dvae_core.data.image_sets import ImageSet
from dvae_core.models.pixelcnn import receptive_field_size
from dvae_core.models.vlae import VLAEConfig
from dvae_core.papers import BenchModel, paper
from dvae_core.profiles import select
from dvae_core.train import TrainConfig, throughput, untrained_model

PAPER = paper("vlae").citation

#: Each model of the table as VLAEConfig overrides.
MODELS = {
    "vae": dict(decoder="factorized", prior="gaussian", posterior="gaussian"),
    "vae_iaf": dict(decoder="factorized", prior="gaussian", posterior="iaf"),
    "vae_af": dict(decoder="factorized", prior="af", posterior="gaussian"),
    "pixelcnn": dict(decoder="pixelcnn", prior="gaussian", posterior="gaussian", unconditional=True),
    "pixelcnn_gaussian": dict(decoder="pixelcnn", prior="gaussian", posterior="gaussian"),
    "vlae": dict(decoder="pixelcnn", prior="af", posterior="gaussian"),
}
LABELS = {"vae": "VAE (factorised decoder)", "vae_iaf": "VAE + IAF posterior", "vae_af": "VAE + AF prior",
          "pixelcnn": "PixelCNN (unconditional)", "pixelcnn_gaussian": "PixelCNN decoder + Gaussian prior",
          "vlae": "VLAE (PixelCNN decoder + AF prior)"}
#: The paper's NLLs in nats (MNIST; Table 1 statically binarised, Appendix D dynamically) and KLs where given.
PAPER_NLL = {
    "vae_iaf": {"nll": 79.88, "data": "static MNIST, Table 1 (IAF VAE)"},
    "vae_af": {"nll": 79.30, "data": "static MNIST, Table 1 (AF VAE)"},
    "vlae": {"nll": 79.03, "data": "static MNIST, Table 1", "appendix_d_nll": 78.94, "appendix_d_kl": 11.73},
    "pixelcnn": {"nll": 87.55, "data": "dynamic MNIST, Appendix D", "kl": 0.0},
    "pixelcnn_gaussian": {"nll": 79.48, "data": "dynamic MNIST, Appendix D", "kl": 10.60},
}


@dataclass(frozen=True)
class VLAENetwork:
    """The sizes and optimiser settings every VLAE profile of the chapter sets."""
    latent_dim: int
    encoder_channels: int
    decoder_channels: int
    hidden: int
    pixelcnn_layers: int
    pixelcnn_channels: int
    flow_steps: int
    flow_hidden: int
    batch_size: int
    steps: int
    lr: float

    def network_fields(self) -> dict:
        """The profile's widths as :class:`VLAEConfig` fields (the rest of the recipe is the caller's)."""
        return {"latent_dim": self.latent_dim, "encoder_channels": self.encoder_channels,
                "decoder_channels": self.decoder_channels, "hidden": self.hidden,
                "pixelcnn_layers": self.pixelcnn_layers, "pixelcnn_channels": self.pixelcnn_channels,
                "flow_steps": self.flow_steps, "flow_hidden": self.flow_hidden}


@dataclass(frozen=True)
class VLAEProfile(VLAENetwork):
    nll_images: int             # test images the NLL is estimated on
    nll_k: int                  # importance samples per image
    windows: tuple[tuple[int, int], ...]   # the receptive-field sweep (the paper's A×B windows)
    binarize: str = "static"
    train_limit: int | None = None
    checkpoint_every: int = 1000
    training_seeds: int = 1     # seeds of every model of the NLL table and every window (a claim's replicates)


PROFILES = {
    "smoke": VLAEProfile(latent_dim=4, encoder_channels=4, decoder_channels=4, hidden=16, pixelcnn_layers=2,
                         pixelcnn_channels=4, flow_steps=1, flow_hidden=16, batch_size=16, steps=6, lr=2e-3,
                         nll_images=20, nll_k=4, windows=((3, 1), (5, 3)), train_limit=500, checkpoint_every=3,
                         training_seeds=2),
    # 2 CPU cores: latent 32, flows of 2 steps × 128 units, 1,500 steps of 64 (1.6 epochs), ~380 images/s per
    # one-thread process for the PixelCNN models; NLL with k = 64 on 500 test images.
    "preview": VLAEProfile(latent_dim=32, encoder_channels=16, decoder_channels=16, hidden=128, pixelcnn_layers=4,
                           pixelcnn_channels=12, flow_steps=2, flow_hidden=128, batch_size=64, steps=1500, lr=2e-3,
                           nll_images=500, nll_k=64, windows=((3, 1), (4, 2), (5, 3), (7, 4)), checkpoint_every=500,
                           training_seeds=5),
    # The paper's binary-image model (Sec. 5.1 / Appendix): latent 64, PixelCNN of 6 masked 3×3 layers of 12
    # channels, AF prior of 4 MADE steps of 640 units, Adamax 2e-3, free bits 0.01 nats/dim, k = 4096.
    "paper": VLAEProfile(latent_dim=64, encoder_channels=32, decoder_channels=32, hidden=256, pixelcnn_layers=6,
                         pixelcnn_channels=12, flow_steps=4, flow_hidden=640, batch_size=100, steps=200_000, lr=2e-3,
                         nll_images=10_000, nll_k=4096, windows=((3, 1), (4, 2), (5, 3), (7, 4)),
                         checkpoint_every=5000, training_seeds=5),
}


def profile(name: str, seed_offset: int = 0) -> VLAEProfile:
    """The profile's settings. ``seed_offset`` is accepted for the common signature: the notebooks pass their
    ``seed`` to the config builders instead."""
    return select(PROFILES, name)


def dataset_kwargs(p: VLAEProfile, split: str, root: str | None = None) -> dict:
    kwargs = {"split": split, "binarize": p.binarize}
    if split == "train" and p.train_limit is not None:
        kwargs["limit"] = p.train_limit
    if split == "test":
        kwargs["binarize"] = "static"  # the test set is one fixed draw whatever the training binarisation
        kwargs["limit"] = p.nll_images
    if root is not None:
        kwargs["root"] = root
    return kwargs


def data(p: VLAEProfile, root: str | None = None) -> tuple[ImageSet, ImageSet]:
    name = "fashion_mnist" if root is None else "mnist_files"
    return make_dataset(name, **dataset_kwargs(p, "train", root)), make_dataset(name, **dataset_kwargs(p, "test", root))


def model_config(p: VLAEProfile, model: str, window: tuple[int, int] = ()) -> VLAEConfig:
    return VLAEConfig(**p.network_fields(), pixelcnn_window=tuple(window), **MODELS[model])


def run_config(p: VLAEProfile, model: str, seed: int = 0, window: tuple[int, int] = (),
               root: str | None = None) -> TrainConfig:
    return TrainConfig(dataset="fashion_mnist" if root is None else "mnist_files",
                       dataset_kwargs=dataset_kwargs(p, "train", root), model=model_config(p, model, window),
                       beta=1.0, steps=p.steps, batch_size=p.batch_size, lr=p.lr, seed=seed,
                       checkpoint_every=p.checkpoint_every, log_every=max(1, min(100, p.steps // 10)),
                       optimizer="adamax")


def table_configs(p: VLAEProfile, seed: int = 0, root: str | None = None) -> list[TrainConfig]:
    """Every model of the table at one training seed."""
    return [run_config(p, model, seed, root=root) for model in MODELS]


def table_seeds(p: VLAEProfile, seed: int = 0) -> tuple[int, ...]:
    """The NLL table's training seeds: ``training_seeds`` of them from the notebook's ``seed``."""
    return tuple(range(seed, seed + p.training_seeds))


def seeded_table_configs(p: VLAEProfile, seed: int = 0, root: str | None = None) -> list[TrainConfig]:
    """Every model of the table at each of :func:`table_seeds`."""
    return [config for s in table_seeds(p, seed) for config in table_configs(p, s, root)]


def sweep_configs(p: VLAEProfile, seed: int = 0, root: str | None = None) -> list[TrainConfig]:
    """The receptive-field sweep at one training seed: the VLAE with each A×B window of the profile."""
    return [run_config(p, "vlae", seed, window, root) for window in p.windows]


def seeded_sweep_configs(p: VLAEProfile, seed: int = 0, root: str | None = None) -> list[TrainConfig]:
    """The receptive-field sweep at each of :func:`table_seeds`, seed by seed (every window of a seed, then the
    next seed): one run per (window, seed), a seed's windows the claim's replicate."""
    return [config for s in table_seeds(p, seed) for config in sweep_configs(p, s, root)]


def model_name(config: TrainConfig) -> str:
    model = config.model
    for name, overrides in MODELS.items():
        if all(getattr(model, k) == v for k, v in overrides.items()) and model.unconditional == overrides.get(
                "unconditional", False):
            return name
    raise ValueError(f"{model} is none of the table's models")


# ------------------------------------------------------------------------------------------- evaluation
#: Torch seed offset of the learning gate's draws (the trained and the untrained model see the same ones).
GATE_SEED = 45_000


def evaluate_run(run: dict, test: ImageSet, p: VLAEProfile, seed: int | None = None) -> dict:
    """Importance-weighted NLL (k = ``nll_k``) on the test images, the ELBO's KL, throughput, and the
    numbers of the run's learning gate (:func:`learning_numbers`, :func:`image_set_mean_nll`). ``seed``
    seeds the evaluation's draws (None: the run's own training seed)."""
    from dvae_core.metrics.nll import importance_weighted_nll

    model, config = run["model"], run["config"]
    seed = config.seed if seed is None else seed
    torch.manual_seed(40_000 + seed)
    # ~400 model evaluations per call was fastest on a 2-core CPU (batch 100 × chunk 4)
    nll = importance_weighted_nll(model, test.data, k=p.nll_k, batch_size=100, chunk=4)
    kl = mean_kl(model, test.data)
    window, name = tuple(config.model.pixelcnn_window), model_name(config)
    return {"model": name, "label": LABELS[name], "seed": config.seed, "window": window,
            "receptive_field": receptive_field_size(config.model.pixelcnn()) if config.model.decoder == "pixelcnn"
            else None, "nll": nll["nll"], "nll_se": nll["std_error"], "neg_elbo": -nll["elbo"], "kl": kl,
            "per_image": nll["per_image"], "train_images_per_s": throughput(run["history"]),
            **learning_numbers(run, test.data, seed), "mean_image_nll": image_set_mean_nll(model, test, seed)}


@torch.no_grad()
def reconstruction_nll(model, images: torch.Tensor, batch_size: int = 250) -> float:
    """E_x E_q[−log p(x | z)] in nats per image, one z ~ q(z | x) per image (the unconditional PixelCNN,
    which has no z, gives its NLL)."""
    device = next(model.parameters()).device
    total = 0.0
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size].to(device)
        z = x.new_zeros(len(x), 0) if model.config.unconditional else model.sample_posterior(x)
        total += float(model._decoder_nll(x, z).sum())
    return total / len(images)


@torch.no_grad()
def learning_numbers(run: dict, images: torch.Tensor, seed: int = 0) -> dict:
    """The learning gate's model numbers on ``images``: the trained model's ELBO and the untrained
    model's (the run's model before its first step, :func:`dvae_core.train.untrained_model`), both one
    sample per image under the same torch seed, and the reconstruction NLL (:func:`reconstruction_nll`).
    A few forward passes: cheap beside the NLL."""
    from dvae_core.metrics.nll import importance_weighted_nll

    model, config = run["model"], run["config"]
    untrained = untrained_model(config, str(next(model.parameters()).device))
    elbos = []
    for net in (model, untrained):
        torch.manual_seed(GATE_SEED + seed)
        elbos.append(importance_weighted_nll(net, images, k=1, batch_size=100, chunk=1)["elbo"])
    torch.manual_seed(GATE_SEED + 1 + seed)
    return {"elbo": elbos[0], "untrained_elbo": elbos[1], "recon_nll": reconstruction_nll(model, images)}


def image_set_mean_nll(model, images: ImageSet, seed: int = 0) -> float:
    """The gate's reconstruction baseline, :func:`dvae_core.evaluate.mean_image_nll`, on ``images``
    (the mean image estimated on one draw of its rows and scored on another), with the model's likelihood."""
    from dvae_core.evaluate import mean_image_nll

    def rows(n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.integers(0, len(images), n)

    return mean_image_nll(model.likelihood, images, len(images), np.random.default_rng(GATE_SEED + seed),
                          sample_factors=rows)


@torch.no_grad()
def mean_kl(model, images: torch.Tensor, samples: int = 8, batch_size: int = 250) -> float:
    """E_x E_q[log q(z|x) − log p(z)] in nats: the information the code carries (0 without a latent)."""
    if model.config.unconditional:
        return 0.0
    return float(per_image_kl(model, images, samples, batch_size).mean())


def nll_table(rows: list[dict]) -> pd.DataFrame:
    """One line per model: its NLL, −ELBO and KL averaged over its training seeds, the NLL's standard
    deviation over those seeds (the spread a claim's test sees), and the paper's NLL."""
    frame = pd.DataFrame(rows)
    records = []
    for model, runs in frame.groupby("model", sort=False):
        paper = PAPER_NLL.get(model, {})
        records.append({"model": runs.label.iloc[0], "seeds": len(runs), "NLL (nats)": runs.nll.mean(),
                        "sd over seeds": runs.nll.std(ddof=1) if len(runs) > 1 else np.nan,
                        "−ELBO": runs.neg_elbo.mean(), "KL (nats)": runs.kl.mean(),
                        "paper NLL (MNIST)": paper.get("nll"), "paper data": paper.get("data", "—")})
    return pd.DataFrame(records).set_index("model")


# ------------------------------------------------------------------------------------------- claims
#: Minimal effects of the paired NLL claims, in nats per image: a mean per-image NLL gain significantly
#: below it is evidence against the claim. The two prior claims' gaps in the paper are 0.58 (AF prior vs IAF
#: posterior) and 0.54 nats (AF vs Gaussian prior); a prior that gains under a fifth of that, 0.1 nats per
#: image (≈ 0.04 % of our ≈ 240-nat NLLs), is no better prior in any sense the paper uses. The VLAE's gain
#: over the unconditional PixelCNN is 8.6 nats in the paper: a latent code worth under 1 nat per image (an
#: eighth of it) is not "the global structure the local decoder cannot model".
NLL_MIN_EFFECT = {"vlae-af-prior-beats-iaf-posterior": 0.1,
                  "vlae-beats-unconditional-pixelcnn": 1.0,
                  "vlae-af-prior-beats-gaussian-prior": 0.1}
#: The smallest falling trend (−Spearman ρ of KL against the receptive field, per training seed) that "the
#: smaller the receptive field, the more information in z" means: a weak monotone trend, the same minimal
#: effect as the book's other per-replicate ρ claim (``fvae-tc-falls``,
#: :data:`dvae_core.papers.factorvae.tradeoff.MIN_TC_FALL_RHO`). With four windows ρ moves in steps of 0.2: a
#: seed whose KLs are ordered no better than one swap from random (ρ ≥ −0.2) does not lean the paper's way.
MIN_KL_FALL_RHO = 0.3
#: The fewest windows of a seed for which its Spearman ρ is defined (a seed with fewer is left out); with two,
#: ρ = ±1 is the direction of the KL's change, and the test over seeds a sign test (the smoke profile's sweep).
MIN_SWEEP_WINDOWS = 2


def budget(p: VLAENetwork, paper_profile: VLAENetwork | None = None) -> dict:
    """Training images per run (steps × batch size) against the paper profile's."""
    paper_profile = paper_profile or PROFILES["paper"]
    return training_budget(p.steps * p.batch_size, paper_profile.steps * paper_profile.batch_size)


def run_gate(row: Mapping, check_kl: bool = True) -> rules.Gate:
    """One run's learning gate (:func:`dvae_core.rules.learning_gate`) from its evaluation row: the ELBO above
    the untrained model's, the reconstruction NLL below the mean image's, and (``check_kl``, for models with a
    latent code) KL ≥ 1 nat. Checks whose numbers the row lacks are not applied."""
    has_latent = row.get("model") != "pixelcnn"
    return rules.learning_gate(kl=row.get("kl") if check_kl and has_latent else None, score=row.get("elbo"),
                               untrained_score=row.get("untrained_elbo"), recon_nll=row.get("recon_nll"),
                               mean_image_nll=row.get("mean_image_nll"))


def gated(outcome: rules.Outcome, gates: Mapping[str, rules.Gate]) -> rules.Outcome:
    """``outcome`` of a comparison of single runs, under their learning gates: unchanged (the gate rule added
    to its rule) if every run passed; else inconclusive — *collapsed* if collapse is the commoner failure,
    else *under-trained* — since a run that did not learn cannot speak for or against the claim."""
    rule = outcome.rule + "; " + rules.GATE_RULE
    failed = {name: gate for name, gate in gates.items() if not gate.passed}
    if not failed:
        return replace(outcome, rule=rule)
    collapsed = sum(gate.collapsed for gate in failed.values())
    reason = "collapsed" if collapsed >= len(failed) - collapsed else "under-trained"
    why = "; ".join(f"{name}: {', '.join(gate.failures)}" for name, gate in failed.items())
    test = {**outcome.test, "gate_failures": {name: list(gate.failures) for name, gate in failed.items()}}
    return rules.Outcome("inconclusive", rule, reason, f"not tested: a run failed its learning gate ({why})", test)


def paired_claim(rows: Sequence[Mapping], better: str, worse: str, claim_id: str, claim: str, paper_value,
                 p: VLAEProfile, cost: rules.Cost | None = None) -> Claim:
    """"``better`` has a lower NLL than ``worse``": per training seed, the NLL difference NLL(worse) −
    NLL(better) of the two models trained on that seed (> 0 is the claim's way), tested over seeds by the
    exact signed-rank test of :func:`dvae_core.rules.paired` (minimal effect :data:`NLL_MIN_EFFECT`); a seed
    counts if both its runs pass their learning gates. Per seed, the per-image difference's mean and
    standard error over the test images are reported beside it. ``cost``: one more seed of both models."""
    by_seed: dict[int, dict[str, Mapping]] = {}
    for row in rows:
        by_seed.setdefault(int(row["seed"]), {})[row["model"]] = row
    seeds = sorted(s for s, models in by_seed.items() if better in models and worse in models)
    pairs = [(by_seed[s][worse], by_seed[s][better]) for s in seeds]
    outcome = rules.paired([w["nll"] for w, _ in pairs], [b["nll"] for _, b in pairs], higher_is_better=True,
                           min_effect=NLL_MIN_EFFECT[claim_id], gates_a=[run_gate(w) for w, _ in pairs],
                           gates_b=[run_gate(b) for _, b in pairs], cost=cost, unit="nats")
    per_seed = {}
    for s, (w, b) in zip(seeds, pairs):
        gain = np.asarray(w["per_image"], float) - np.asarray(b["per_image"], float)
        per_seed[str(s)] = {"gain": round(float(gain.mean()), 3),
                            "std_error_over_images": round(float(gain.std(ddof=1) / np.sqrt(len(gain))), 3)}
    gates = [run_gate(row) for pair in pairs for row in pair]
    return Claim.decided(
        outcome, id=claim_id, paper=PAPER, claim=claim,
        metric=f"NLL (nats per image, importance-weighted on the same test images), {LABELS[worse]} − "
               f"{LABELS[better]}, per training seed (the two models of a seed are a pair)",
        paper_value=paper_value,
        ours={better: round(float(np.mean([b["nll"] for _, b in pairs])), 2) if pairs else None,
              worse: round(float(np.mean([w["nll"] for w, _ in pairs])), 2) if pairs else None,
              "per_seed": per_seed},
        gate=gate_summary(gates), budget=budget(p), seeds=seeds)


def table_claims(rows: list[dict], p: VLAEProfile, runs: list[dict] | None = None) -> list[Claim]:
    """The table's three claims over every seed of ``rows``; ``runs`` (the trained runs) price one more seed."""
    def cost(*models: str) -> rules.Cost | None:
        if runs is None:
            return None
        from dvae_core.costs import mean_replicate_cost

        chosen = [r for r in runs if model_name(r["config"]) in models]
        return mean_replicate_cost(chosen, len({r["config"].seed for r in chosen}))

    return [
        paired_claim(rows, "vae_af", "vae_iaf", "vlae-af-prior-beats-iaf-posterior",
                     "An autoregressive-flow prior gives a better likelihood than an IAF posterior of the same size "
                     "(Sec. 3.2, Table 1)", {"AF prior": 79.30, "IAF posterior": 79.88}, p, cost("vae_af", "vae_iaf")),
        paired_claim(rows, "vlae", "pixelcnn", "vlae-beats-unconditional-pixelcnn",
                     "A VLAE (PixelCNN decoder with a latent code and AF prior) beats the unconditional PixelCNN "
                     "(Appendix D)", {"VLAE": 78.94, "PixelCNN": 87.55}, p, cost("vlae", "pixelcnn")),
        paired_claim(rows, "vlae", "pixelcnn_gaussian", "vlae-af-prior-beats-gaussian-prior",
                     "With a PixelCNN decoder, an AF prior beats a Gaussian prior (Appendix D)",
                     {"AF prior": 78.94, "Gaussian prior": 79.48}, p, cost("vlae", "pixelcnn_gaussian")),
    ]


def spearman_rho(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's ρ of ``y`` against ``x`` (average ranks for ties), to 12 decimals; NaN with fewer than
    :data:`MIN_SWEEP_WINDOWS` points or when either is constant."""
    from scipy.stats import rankdata

    rx, ry = rankdata(np.asarray(x, float)), rankdata(np.asarray(y, float))
    if len(rx) < MIN_SWEEP_WINDOWS or np.ptp(rx) == 0 or np.ptp(ry) == 0:
        return float("nan")
    # rounded so that equal correlations of different seeds tie in the signed-rank test's ranks
    return round(float(np.corrcoef(rx, ry)[0, 1]), 12)


def sweep_seeds(sweep: Sequence[Mapping]) -> pd.DataFrame:
    """One row per training seed of the receptive-field sweep: the receptive fields and KLs of its windows
    (in receptive-field order), Spearman ρ(receptive field, KL) over them (:func:`spearman_rho`), each run's
    learning gate (:func:`run_gate` without the KL check: the KL is the measurement) and the seed's gate, which
    fails if any of its runs does (its failures are theirs)."""
    frame = pd.DataFrame(list(sweep))
    rows = []
    for s, runs in frame.groupby("seed", sort=True):
        runs = runs.sort_values("receptive_field")
        gates = [run_gate(row, check_kl=False) for row in runs.to_dict(orient="records")]
        seed_gate = rules.Gate(tuple(f for g in gates for f in g.failures), any(g.collapsed for g in gates))
        rows.append({"seed": int(s), "windows": [tuple(w) for w in runs.window],
                     "receptive_field": [int(v) for v in runs.receptive_field], "kl": [float(v) for v in runs.kl],
                     "rho": spearman_rho(runs.receptive_field, runs.kl), "run_gates": gates, "gate": seed_gate})
    return pd.DataFrame(rows, columns=["seed", "windows", "receptive_field", "kl", "rho", "run_gates", "gate"])


def sweep_seed_table(sweep: Sequence[Mapping]) -> pd.DataFrame:
    """The sweep for the page: per training seed, the KL at each window, Spearman ρ and the seed's gate."""
    records = []
    for r in sweep_seeds(sweep).itertuples():
        row = {"seed": r.seed}
        row.update({f"KL {w[0]}×{w[1]} (RF {rf})": kl for w, rf, kl in zip(r.windows, r.receptive_field, r.kl)})
        row.update({"Spearman ρ": r.rho, "gate": "passed" if r.gate.passed else "; ".join(r.gate.failures)})
        records.append(row)
    return pd.DataFrame(records).set_index("seed")


def receptive_field_claim(sweep: Sequence[Mapping], p: VLAEProfile, cost: rules.Cost | None = None) -> Claim:
    """"The smaller the receptive field, the more information in z", over training seeds: ``sweep`` holds one
    evaluation row (:func:`evaluate_run`) per (window, seed).

    Per seed, Spearman ρ between the windows' receptive fields and their KLs (:func:`sweep_seeds`); the claim's
    statistic is −ρ (> 0: KL falls as the window grows), tested over seeds by the exact signed-rank test of
    :func:`dvae_core.rules.one_sample`, minimal effect :data:`MIN_KL_FALL_RHO`. A seed counts only if every one
    of its runs passes its learning gate; the gate's KL check is not applied: a large window that leaves z
    nearly empty is the effect the claim predicts, not a failed run. ``cost``: one more seed, every window of it
    (:func:`dvae_core.costs.mean_replicate_cost` over the sweep's seeds)."""
    seeds = sweep_seeds(sweep)
    gates = list(seeds.gate)
    outcome = rules.one_sample(-seeds.rho.to_numpy(float), MIN_KL_FALL_RHO, gates=gates, cost=cost,
                               replicate="seed", test_name="exact Wilcoxon signed-rank test of −ρ over seeds")
    outcome = replace(outcome, rule=outcome.rule + " (KL not checked: it is the measurement); a seed counts only "
                                                   "if every window's run passes")
    kept = seeds[np.array([g.passed for g in gates], bool) & np.isfinite(seeds.rho.to_numpy(float))]
    fields = sorted({rf for rfs in seeds.receptive_field for rf in rfs})
    mean_kl = {}
    for rf in fields:
        values = [kl for rfs, kls in zip(kept.receptive_field, kept.kl) for f, kl in zip(rfs, kls) if f == rf]
        mean_kl[rf] = round(float(np.mean(values)), 3) if values else None
    windows = {rf: w for ws, rfs in zip(seeds.windows, seeds.receptive_field) for w, rf in zip(ws, rfs)}

    def rho(v: float) -> float | None:
        return round(float(v), 4) if np.isfinite(v) else None

    run_gates = [g for gs in seeds.run_gates for g in gs]
    return Claim.decided(
        outcome, id="vlae-receptive-field-vs-kl", paper=PAPER,
        claim="The smaller the decoder's receptive field, the more information the latent code carries "
              "(Sec. 3.1, Sec. 5.2)",
        metric="per training seed, Spearman ρ(receptive field of the PixelCNN window in pixels, KL in nats per "
               "image) over the sweep's windows, one VLAE run per (window, seed); the statistic is −ρ",
        paper_value="qualitative: a local decoder leaves global structure to z (Figs. 1–3)",
        ours={"receptive_field": fields, "windows": [f"{windows[rf][0]}×{windows[rf][1]}" for rf in fields],
              "mean_kl": [mean_kl[rf] for rf in fields],
              "per_seed_rho": {str(r.seed): rho(r.rho) for r in seeds.itertuples()},
              "median_rho": rho(float(np.median(kept.rho))) if len(kept) else None,
              "seeds_falling": int((kept.rho < 0).sum()), "seeds": len(kept),
              "p": outcome.test.get("p_claim")},
        gate=gate_summary(run_gates), budget=budget(p), seeds=[int(s) for s in seeds.seed])


# ------------------------------------------------------------------------------------------- figures
@torch.no_grad()
def decompressions(model, images: torch.Tensor, num: int = 3, seed: int = 0, mean: bool = False) -> list[torch.Tensor]:
    """``num`` lossy decompressions of each image: z ~ q(z | x), then x ~ p(x | z) (with ``mean``,
    the decoder's pixel means fed back pixel by pixel: :meth:`VLAE.decode_sample`)."""
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    out = []
    for _ in range(num):
        z = model.sample_posterior(images.to(device))
        out.append(model.decode_sample(z, generator, mean=mean).cpu())
    return out


def plot_receptive_field_sweep(sweep: Sequence[Mapping]):
    """KL (left) and NLL (right) against the receptive field: one thin line per training seed (dashed and grey
    for a seed the learning gate leaves out of the test), and the mean over the gated-in seeds (± 1 s.d. over
    them) in bold."""
    import matplotlib.pyplot as plt

    frame = pd.DataFrame(list(sweep)).sort_values(["seed", "receptive_field"])
    passed = {r.seed: r.gate.passed for r in sweep_seeds(sweep).itertuples()}
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.3))
    for ax, column in ((axes[0], "kl"), (axes[1], "nll")):
        for s, runs in frame.groupby("seed", sort=True):
            style = dict(color="C0", alpha=0.45, lw=0.9) if passed[s] else dict(color="0.6", ls="--", lw=0.9)
            ax.plot(runs.receptive_field, runs[column], marker=".", **style)
        kept = frame[frame.seed.map(passed)]
        if len(kept):
            stats = kept.groupby("receptive_field")[column].agg(["mean", "std"]).reset_index()
            ax.errorbar(stats.receptive_field, stats["mean"], yerr=stats["std"].fillna(0), fmt="o-", color="C1",
                        lw=2, capsize=3, zorder=3, label=f"mean ± s.d. over {kept.seed.nunique()} seeds")
        ax.set_xlabel("receptive field of the PixelCNN (pixels)")
    windows = frame.drop_duplicates("receptive_field")
    top = frame.groupby("receptive_field").kl.max()
    for _, row in windows.iterrows():
        axes[0].annotate(f"{row.window[0]}×{row.window[1]}", (row.receptive_field, top[row.receptive_field]),
                         fontsize=8, xytext=(4, 4), textcoords="offset points")
    axes[0].set_ylabel("KL: information in z (nats / image)")
    axes[0].set_title("A local decoder puts more into z")
    axes[0].legend(fontsize=8, frameon=False)
    axes[1].set_ylabel("NLL (nats / image)")
    axes[1].set_title("Likelihood across the sweep")
    fig.tight_layout()
    return fig


@torch.no_grad()
def per_image_kl(model, images: torch.Tensor, samples: int = 8, batch_size: int = 250) -> np.ndarray:
    """(n,) E_q[log q(z|x) − log p(z)] per image in nats, averaged over ``samples`` posterior draws."""
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size].to(device)
        z, log_q = model.sample_posterior_with_log_q(batch, k=samples)
        out.append((log_q - model.log_prior(z)).view(samples, len(batch)).mean(0).cpu())
    return torch.cat(out).numpy().astype(np.float64)


def bench_config(name: str) -> TrainConfig:
    """The run ``dvae_core.bench`` times under profile ``name``: the VLAE of the NLL table."""
    return run_config(profile(name), "vlae")


BENCH_MODELS = {"vlae": BenchModel("VLAE", "vlae.run_config(vlae.profile(profile), 'vlae')", bench_config)}
