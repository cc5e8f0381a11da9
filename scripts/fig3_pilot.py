"""The pilot that chose SBD Fig. 3's FactorVAE settings (issue 19: "fix what does not train").

With γ = 30 and the discriminator at Kim & Mnih's 1e-4 while the preview's VAE learns at 3e-4, Fig. 3's
FactorVAEs trained badly: KL several times the plain VAE's, reconstructions worse, the discriminator barely
above chance. This pilot trains the plain VAE and FactorVAE variants (γ, the discriminator's learning rate,
a γ warm-up) on two seeds the book never uses (offset 3000) and writes, per run, MIG, reconstruction NLL,
KL and the discriminator's final accuracy and TC estimate to ``--out``. The preview profile's
``fig3_factor_vae`` is the variant whose KL and reconstruction stay at the plain VAE's.

    DVAE_JOBS=2 .venv/bin/python scripts/fig3_pilot.py --out results/pilots/sbd_fig3_pilot.json

About 10 CPU-minutes on 2 cores from an empty store.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from dvae_core.infra import atomic_write_text
from dvae_core.models import FactorVAEConfig
from dvae_core.papers import sbd
from dvae_core.sweep import get_or_train_all

SEED_OFFSET = 3000
SEEDS = (3000, 3001)
CHOSEN = "γ=10, D at 3e-4"
#: label → the TC term (None: the plain VAE), and the decoders it was tried with
ARMS: dict[str, tuple[FactorVAEConfig | None, tuple[str, ...]]] = {
    "plain VAE": (None, ("deconv", "sb")),
    "γ=30, D at 1e-4 (before)": (FactorVAEConfig(gamma=30.0, disc_hidden=256), ("deconv", "sb")),
    "γ=30, D at 1e-3": (FactorVAEConfig(gamma=30.0, disc_hidden=256, disc_lr=1e-3), ("deconv",)),
    "γ=30, D at 1e-3, γ warm-up 500 steps": (
        FactorVAEConfig(gamma=30.0, disc_hidden=256, disc_lr=1e-3, gamma_warmup=500), ("deconv",)),
    "γ=20, D at 1e-3": (FactorVAEConfig(gamma=20.0, disc_hidden=256, disc_lr=1e-3), ("deconv",)),
    "γ=10, D at 1e-4": (FactorVAEConfig(gamma=10.0, disc_hidden=256), ("deconv",)),
    "γ=10, D at 1e-3": (FactorVAEConfig(gamma=10.0, disc_hidden=256, disc_lr=1e-3), ("deconv",)),
    CHOSEN: (FactorVAEConfig(gamma=10.0, disc_hidden=256, disc_lr=3e-4), ("deconv", "sb")),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="the JSON file to write")
    args = parser.parse_args(argv)
    p = sbd.profile("preview", seed_offset=SEED_OFFSET)
    if sbd.profile("preview").fig3_factor_vae != ARMS[CHOSEN][0]:
        parser.exit(2, "error: the preview profile's fig3_factor_vae is no longer this pilot's choice: "
                       "update ARMS or CHOSEN\n")
    labels, configs = [], []
    for label, (factor_vae, decoders) in ARMS.items():
        for decoder in decoders:
            for seed in SEEDS:
                labels.append((label, decoder, seed))
                configs.append(sbd.comparison_config(p, decoder, seed, factor_vae=factor_vae))
    runs = get_or_train_all(configs, evaluate=sbd.scorer(p))
    rows = []
    for (label, decoder, seed), run in zip(labels, runs):
        last, evaluation = run["history"][-1], run["evaluation"]
        rows.append({"arm": label, "decoder": decoder, "seed": seed, "mig": evaluation["mig"],
                     "recon_nll": evaluation["recon_nll"], "kl": evaluation["kl"],
                     "disc_accuracy": last.get("disc_accuracy"), "tc_estimate": last.get("tc")})
    table = pd.DataFrame(rows)
    report = {"seeds": list(SEEDS), "steps": p.steps, "batch_size": p.batch_size, "vae_lr": p.lr,
              "chosen": CHOSEN, "runs": table.round(4).to_dict(orient="records")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    print(table.groupby(["decoder", "arm"], sort=False)[["mig", "recon_nll", "kl", "disc_accuracy"]]
          .median().round(3).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
