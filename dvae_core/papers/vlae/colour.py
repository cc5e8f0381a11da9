"""Colour kept in z (Chen et al. 2017, Sec. 3 / Fig. 3(d)): a VLAE whose PixelCNN sees only grayscale context.

Sec. 3 / Fig. 3(d) of the paper: a PixelCNN decoder whose autoregressive context is grayscale only cannot
copy colour from the pixels it has generated, so the colour has to travel in z: decompressions keep the
input's colours. Here on the procedural 3D-shapes renderer (floor, wall and object hues, 10 each), RGB in
[0, 1], with the per-channel Bernoulli cross-entropy of dvae_core.models.pixelcnn ("Colour").

The verdict (:func:`colour_claim`) is two one-sided signed-rank tests over the test images, paired image by
image (:func:`dvae_core.rules.one_sample`): the colour error is lower and the KL higher with the grayscale
context. The claim is reproduced if both halves are, not reproduced if either is, inconclusive otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd
import torch

from dvae_core import rules
from dvae_core.claims import Claim, gate_summary
from dvae_core.data import make_dataset
from dvae_core.models.pixelcnn import luminance
from dvae_core.models.vlae import VLAEConfig, vlae_config
from dvae_core.profiles import select
from dvae_core.papers.vlae import GATE_SEED, PAPER, VLAENetwork, budget, decompressions, learning_numbers, \
    per_image_kl
from dvae_core.train import TrainConfig

#: The two decoders compared, as VLAEConfig's ``context``.
COLOUR_CONTEXTS = ("full", "gray")
COLOUR_LABELS = {"full": "full context (RGB)", "gray": "grayscale context"}
#: Seed offset of the fixed test draw (training batches use the run's seed).
COLOUR_TEST_SEED = 50_000
#: Minimal effect of the colour half: a mean-chroma error lower by 0.01 (intensities in [0, 1]) is under 3 levels
#: of an 8-bit channel, a colour shift no eye sees in these flat hues (the ten hues of a part are ≥ 0.1 apart);
#: a per-image gain significantly below it is evidence against "the colours are kept".
COLOUR_MIN_EFFECT = 0.01
#: Minimal effect of the KL half, in nats per image: one of the ten hues of one part of the scene is
#: log 10 ≈ 2.3 nats; a code that carries under 1 nat more (less than half a hue) has not taken the colour in.
KL_MIN_EFFECT = 1.0


@dataclass(frozen=True)
class ColourProfile(VLAENetwork):
    resolution: int
    test_images: int            # the paired comparison's images
    num_decompressions: int     # decompressions per test image (colour error averaged over them)
    kl_samples: int             # posterior samples per image of the KL estimate
    training_seeds: int = 5     # the claim's replicates: both models trained on each seed (a pair per seed)
    pixelcnn_window: tuple = ()
    checkpoint_every: int = 1000


PROFILES = {
    "smoke": ColourProfile(resolution=8, latent_dim=4, encoder_channels=4, decoder_channels=4, hidden=16,
                           pixelcnn_layers=2, pixelcnn_channels=4, flow_steps=1, flow_hidden=16, batch_size=8,
                           steps=6, lr=2e-3, test_images=12, num_decompressions=1, kl_samples=2, training_seeds=2,
                           checkpoint_every=3),
    # 2 CPU cores: 16×16 renders (the hues and the object stay legible), a 3-layer 3×3 PixelCNN (21-pixel
    # receptive field) of 12 channels, AF prior of 2 steps × 128. Measured on the shared 2-core machine, one
    # thread: 25 ms (full) and 27 ms (gray) per training step of 32, + 2 ms of data once the 480 geometries are
    # rendered; 600 steps in the training loop took 16 s and 15 s. 2 × 3,000 steps ≈ 2.7 min, plus ≈ 10 s per
    # model of pixel-by-pixel decompressions and KLs of the 200 test images: ≈ 3 min per seed, five seeds.
    "preview": ColourProfile(resolution=16, latent_dim=32, encoder_channels=16, decoder_channels=16, hidden=128,
                             pixelcnn_layers=3, pixelcnn_channels=12, flow_steps=2, flow_hidden=128, batch_size=32,
                             steps=3000, lr=2e-3, test_images=200, num_decompressions=2, kl_samples=8,
                             checkpoint_every=1000),
    # The chapter's paper-sized VLAE (64-dim z, 6 masked 3×3 layers of 12 channels, AF prior of 4 MADE steps of
    # 640 units, Adamax 2e-3, free bits 0.01 nats/dim) at CIFAR-10's 32×32; the paper's CIFAR-10 networks
    # (ResNet encoder, larger PixelCNN) are not reproduced.
    "paper": ColourProfile(resolution=32, latent_dim=64, encoder_channels=32, decoder_channels=32, hidden=256,
                           pixelcnn_layers=6, pixelcnn_channels=12, flow_steps=4, flow_hidden=640, batch_size=100,
                           steps=200_000, lr=2e-3, test_images=1000, num_decompressions=4, kl_samples=64,
                           checkpoint_every=5000),
}


def profile(name: str, seed_offset: int = 0) -> ColourProfile:
    """The profile's settings. ``seed_offset`` is accepted for the common signature: the notebook passes its
    ``seed`` to :func:`training_seeds`, :func:`all_colour_configs` and :func:`colour_data` instead."""
    return select(PROFILES, name)


def training_seeds(p: ColourProfile, seed_offset: int = 0) -> list[int]:
    """The claim's training seeds: ``p.training_seeds`` of them from ``seed_offset``."""
    return [seed_offset + i for i in range(p.training_seeds)]


def all_colour_configs(p: ColourProfile, seed_offset: int = 0) -> list[TrainConfig]:
    """:func:`colour_configs` of every training seed, seed by seed (full, then gray)."""
    return [c for seed in training_seeds(p, seed_offset) for c in colour_configs(p, seed)]


def colour_model_config(p: ColourProfile, context: str) -> VLAEConfig:
    """The VLAE (PixelCNN decoder, AF prior, Gaussian posterior) on RGB images with ``context`` "full" or "gray"."""
    if context not in COLOUR_CONTEXTS:
        raise ValueError(f"unknown context {context!r}: choose one of {COLOUR_CONTEXTS}")
    return vlae_config(context, **p.network_fields(), in_channels=3, resolution=p.resolution,
                       pixelcnn_window=tuple(p.pixelcnn_window), decoder="pixelcnn", prior="af", posterior="gaussian")


def colour_configs(p: ColourProfile, seed: int = 0) -> list[TrainConfig]:
    """The full-context and the grayscale-context VLAE on 3D shapes at the profile's resolution, in the
    order of :data:`COLOUR_CONTEXTS`; the same data stream, seed and budget for both."""
    return [TrainConfig(dataset="shapes3d", dataset_kwargs={"resolution": p.resolution},
                        model=colour_model_config(p, context), beta=1.0, steps=p.steps, batch_size=p.batch_size,
                        lr=p.lr, seed=seed, checkpoint_every=p.checkpoint_every,
                        log_every=max(1, min(100, p.steps // 10)), optimizer="adamax")
            for context in COLOUR_CONTEXTS]


def colour_data(p: ColourProfile, seed: int = 0):
    """The renderer and the fixed test images (a draw of the factor grid independent of training's)."""
    dataset = make_dataset("shapes3d", resolution=p.resolution)
    images, _ = dataset.sample(p.test_images, np.random.default_rng(COLOUR_TEST_SEED + seed))
    return dataset, images


def mean_chroma(images: torch.Tensor) -> torch.Tensor:
    """(n, 3) per-image mean chroma: RGB minus its luminance Y = 0.299 R + 0.587 G + 0.114 B, per pixel,
    averaged over the image. Zero for any gray image; what is left of the colour once the brightness
    both decoders see is removed."""
    images = images.float()
    return (images - luminance(images)).mean(dim=(2, 3))


def chroma_error(inputs: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
    """(n,) colour error: mean over R, G, B of |mean chroma of the input − mean chroma of the output|."""
    return (mean_chroma(inputs) - mean_chroma(outputs)).abs().mean(dim=1)


def mean_rgb_error(inputs: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
    """(n,) mean over R, G, B of |mean RGB of the input − mean RGB of the output| (brightness included)."""
    return (inputs.float().mean(dim=(2, 3)) - outputs.float().mean(dim=(2, 3))).abs().mean(dim=1)


@torch.no_grad()
def colour_error(model, images: torch.Tensor, num: int = 2, seed: int = 0, kl_samples: int = 8) -> dict:
    """How well ``model``'s decompressions keep the input's colours, and how much z carries.

    ``num`` decompressions per image (z ~ q(z|x), then the PixelCNN's pixel means fed back pixel by pixel:
    :meth:`VLAE.decode_sample` with ``mean=True``); per image, the :func:`chroma_error` averaged over
    them (``per_image_colour_error``), the same for mean RGB (``per_image_rgb_error``), and the KL in
    nats (``per_image_kl``); their means, and the decompressions themselves."""
    outputs = decompressions(model, images, num, seed, mean=True)
    colour = torch.stack([chroma_error(images, out) for out in outputs]).mean(0).numpy().astype(np.float64)
    rgb = torch.stack([mean_rgb_error(images, out) for out in outputs]).mean(0).numpy().astype(np.float64)
    torch.manual_seed(70_000 + seed)
    kl = per_image_kl(model, images, kl_samples)
    return {"colour_error": float(colour.mean()), "rgb_error": float(rgb.mean()), "kl": float(kl.mean()),
            "per_image_colour_error": colour, "per_image_rgb_error": rgb, "per_image_kl": kl,
            "decompressions": outputs}


def colour_table(results: dict[str, dict]) -> pd.DataFrame:
    """One row per decoder context: mean colour (chroma) error, mean-RGB error and KL, ± standard errors."""
    rows = []
    for context, r in results.items():
        n = len(r["per_image_colour_error"])
        rows.append({"decoder context": COLOUR_LABELS[context],
                     "colour error (chroma)": r["colour_error"],
                     "± s.e.": float(np.std(r["per_image_colour_error"], ddof=1) / np.sqrt(n)),
                     "mean-RGB error": r["rgb_error"], "KL (nats)": r["kl"],
                     "KL ± s.e.": float(np.std(r["per_image_kl"], ddof=1) / np.sqrt(n)), "images": n})
    return pd.DataFrame(rows).set_index("decoder context")


def colour_gate_numbers(run: dict, dataset, images: torch.Tensor, seed: int = 0) -> dict:
    """The learning gate's numbers of one colour run (:func:`dvae_core.papers.vlae.learning_numbers` on the test
    images) and the reconstruction baseline: the renderer's mean image, scored on fresh renders
    (:func:`dvae_core.evaluate.mean_image_nll`, with the model's per-channel Bernoulli likelihood)."""
    from dvae_core.evaluate import mean_image_nll

    numbers = learning_numbers(run, images, seed)
    numbers["mean_image_nll"] = mean_image_nll(run["model"].likelihood, dataset, len(images),
                                               np.random.default_rng(GATE_SEED + seed))
    return numbers


def colour_gate(numbers: Mapping) -> rules.Gate:
    """One colour run's learning gate: ELBO above the untrained model's, reconstruction NLL below the mean
    image's. The KL check is not applied: the KL is what the claim measures (a full-context decoder that
    leaves z nearly empty is the effect predicted, not a failed run)."""
    return rules.learning_gate(score=numbers.get("elbo"), untrained_score=numbers.get("untrained_elbo"),
                               recon_nll=numbers.get("recon_nll"), mean_image_nll=numbers.get("mean_image_nll"))


def combine_halves(colour_outcome: rules.Outcome, kl_outcome: rules.Outcome) -> rules.Outcome:
    """The claim's verdict from its two halves: reproduced if both are; not reproduced if either is (evidence
    against one half is evidence against the claim); inconclusive otherwise, with the reason and the plan of
    the inconclusive half (of the one that needs more images if both are)."""
    halves = {"colour": colour_outcome, "KL": kl_outcome}
    rule = ("two tests on the same test images, reproduced if both are, not reproduced if either is, inconclusive "
            f"otherwise — colour: {colour_outcome.rule} — KL: {kl_outcome.rule}")
    explanation = "; ".join(f"{name}: {o.verdict}, {o.explanation}" for name, o in halves.items())
    test = {"colour": colour_outcome.test, "kl": kl_outcome.test}
    verdicts = [o.verdict for o in halves.values()]
    if all(v == "reproduced" for v in verdicts):
        return rules.Outcome("reproduced", rule, None, explanation, test)
    if "not reproduced" in verdicts:
        return rules.Outcome("not reproduced", rule, None, explanation, test)
    open_halves = [o for o in halves.values() if o.verdict == "inconclusive"]
    binding = max(open_halves, key=lambda o: ((o.power or {}).get("needed") or 0))
    return rules.Outcome("inconclusive", rule, binding.reason, explanation, test, binding.power)


def colour_claim(per_seed: Mapping[int, Mapping[str, dict]], p: "ColourProfile",
                 gates: Mapping[int, Mapping[str, Mapping]] | None = None, cost: rules.Cost | None = None) -> Claim:
    """"The grayscale-context decoder keeps colour in z", over training seeds: ``per_seed[seed][context]`` is
    the :func:`colour_error` of that seed's model on the fixed test images (the same images for every seed).

    Two one-sided tests over seeds, the two models of a seed a pair (:func:`dvae_core.rules.paired`): the
    mean colour error full − gray > 0 (minimal effect :data:`COLOUR_MIN_EFFECT`) and the mean KL gray − full
    > 0 (minimal effect :data:`KL_MIN_EFFECT`), combined by :func:`combine_halves`. ``gates[seed][context]``
    holds each run's :func:`colour_gate_numbers`; a seed counts if both its runs pass. ``cost``: one more
    seed of both models."""
    seeds = sorted(per_seed)
    sizes = {len(per_seed[s][c][key]) for s in seeds for c in COLOUR_CONTEXTS
             for key in ("per_image_colour_error", "per_image_kl")}
    if len(sizes) > 1:
        raise ValueError("every model must be scored on the same images")
    value = {(s, c, key): float(per_seed[s][c][key]) for s in seeds for c in COLOUR_CONTEXTS
             for key in ("colour_error", "kl")}
    seed_gates = {c: [colour_gate(gates[s][c]) for s in seeds] if gates else None for c in COLOUR_CONTEXTS}
    colour_outcome = rules.paired([value[s, "full", "colour_error"] for s in seeds],
                                  [value[s, "gray", "colour_error"] for s in seeds], higher_is_better=True,
                                  min_effect=COLOUR_MIN_EFFECT, gates_a=seed_gates["full"],
                                  gates_b=seed_gates["gray"], cost=cost)
    kl_outcome = rules.paired([value[s, "gray", "kl"] for s in seeds], [value[s, "full", "kl"] for s in seeds],
                              higher_is_better=True, min_effect=KL_MIN_EFFECT, gates_a=seed_gates["gray"],
                              gates_b=seed_gates["full"], cost=cost, unit="nats")
    outcome = combine_halves(colour_outcome, kl_outcome)

    def mean(context: str, key: str) -> float | None:
        return round(float(np.mean([value[s, context, key] for s in seeds])), 4) if seeds else None

    run_gates = [g for c in COLOUR_CONTEXTS for g in (seed_gates[c] or [])]
    return Claim.decided(
        outcome, id="vlae-grayscale-context-keeps-colour-in-z", paper=PAPER,
        claim="A PixelCNN decoder whose context is grayscale only forces colour into z: the grayscale-context "
              "VLAE's decompressions keep the input's colours better than the full-context one's, and its "
              "code carries more nats (Sec. 3, Fig. 3(d))",
        metric="colour error of decompressions (mean |Δ mean chroma| over R, G, B; chroma = RGB − luminance) "
               "and KL (nats), full vs grayscale context, per training seed (the two models of a seed are a "
               "pair; each number a mean over the same test images of 3D shapes)",
        paper_value="qualitative: Fig. 3(d), CIFAR-10 decompressions of a grayscale-context VLAE keep the colours",
        ours={"colour_error_full": mean("full", "colour_error"), "colour_error_gray": mean("gray", "colour_error"),
              "kl_full": mean("full", "kl"), "kl_gray": mean("gray", "kl"),
              "p_colour": colour_outcome.test.get("p_claim"), "p_kl": kl_outcome.test.get("p_claim"),
              "images": sizes.pop() if sizes else 0,
              "per_seed": {str(s): {"colour_gain": round(value[s, "full", "colour_error"]
                                                         - value[s, "gray", "colour_error"], 4),
                                    "kl_gain": round(value[s, "gray", "kl"] - value[s, "full", "kl"], 3)}
                           for s in seeds}},
        gate=gate_summary(run_gates) if gates else None, budget=budget(p, PROFILES["paper"]), seeds=seeds)


def colour_seed_table(per_seed: Mapping[int, Mapping[str, dict]]) -> pd.DataFrame:
    """One row per training seed: each decoder's colour (chroma) error and KL, and the two gains."""
    rows = []
    for seed in sorted(per_seed):
        full, gray = per_seed[seed]["full"], per_seed[seed]["gray"]
        rows.append({"seed": seed, "colour error, full": full["colour_error"], "colour error, gray": gray["colour_error"],
                     "colour gain (full − gray)": full["colour_error"] - gray["colour_error"],
                     "KL full (nats)": full["kl"], "KL gray (nats)": gray["kl"], "KL gain (gray − full)": gray["kl"] - full["kl"]})
    return pd.DataFrame(rows).set_index("seed")


def plot_colour_errors(full: dict, gray: dict):
    """Per test image: colour error of the two decoders (left, one point per image) and KL (right)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.5))
    for ax, key, name in ((axes[0], "per_image_colour_error", "colour error (chroma)"),
                          (axes[1], "per_image_kl", "KL (nats)")):
        a, b = np.asarray(full[key]), np.asarray(gray[key])
        ax.scatter(a, b, s=9, alpha=0.6)
        lo, hi = float(min(a.min(), b.min())), float(max(a.max(), b.max()))
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_xlabel(f"{name}: {COLOUR_LABELS['full']}")
        ax.set_ylabel(f"{name}: {COLOUR_LABELS['gray']}")
    axes[0].set_title("Below the diagonal: gray context keeps colour better", fontsize=9)
    axes[1].set_title("Above the diagonal: more information in z", fontsize=9)
    fig.tight_layout()
    return fig
