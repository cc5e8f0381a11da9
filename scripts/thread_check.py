"""Do Fig. 2's verdicts survive another thread count? (issue 19, "robust to the machine")

Retrains Fig. 2's preview runs in one process at ``--threads`` torch threads (the committed book trains
them in two worker processes of one thread each) into a scratch run store, scores them with the
notebook's own functions and prints, per claim, the committed verdict, effect and p beside this run's, and
per run the committed MIG and NLL beside this run's. Writes the comparison as JSON to ``--out``.

    .venv/bin/python scripts/thread_check.py --seed 1000 --threads 2 --store /tmp/thread_store --out X.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from dvae_core.infra import atomic_write_text
from dvae_core.papers import sbd
from dvae_core.sweep import get_or_train_all

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1000, help="the seed offset of the committed book's Fig. 2")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--store", type=Path, required=True, help="a scratch run store (not the book's)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    committed = json.loads((ROOT / "results/preview/sbd_fig2_deconv_vs_sb.json").read_text())
    if committed.get("seed_offset", 0) != args.seed:
        parser.exit(2, f"error: --seed {args.seed}: the committed Fig. 2 ran at seed offset "
                       f"{committed.get('seed_offset', 0)}; give that\n")
    torch.set_num_threads(args.threads)
    p = sbd.profile("preview", seed_offset=args.seed)
    runs = get_or_train_all(sbd.fig2_configs(p), store=args.store, device="cpu", jobs=1, evaluate=sbd.scorer(p))
    table = sbd.fig2_table([r["evaluation"] for r in runs])
    claims = sbd.fig2_claims(table, p=p, runs=runs)
    before = {c["id"]: c for c in committed["claims"]}
    old_runs = {(r["decoder"], r["seed"]): r for r in committed["runs"]}
    report = {"threads": args.threads, "seed_offset": args.seed, "claims": [], "runs": []}
    for claim in claims:
        old = before[claim.id]
        report["claims"].append({"id": claim.id, "committed": old["verdict"], "now": claim.verdict,
                                 "committed_effect": old["test"].get("mean_effect"),
                                 "now_effect": claim.test.get("mean_effect"),
                                 "committed_p": old["test"].get("p_claim"), "now_p": claim.test.get("p_claim")})
    for row in table.itertuples():
        old = old_runs[(row.decoder, row.seed)]
        report["runs"].append({"decoder": row.decoder, "seed": int(row.seed), "mig_committed": old["mig"],
                               "mig_now": round(float(row.mig), 5), "nll_committed": old["recon_nll"],
                               "nll_now": round(float(row.recon_nll), 5)})
    atomic_write_text(args.out, json.dumps(report, indent=1) + "\n")
    for c in report["claims"]:
        print(f"{c['id']}: committed {c['committed']} (effect {c['committed_effect']}, p {c['committed_p']}) "
              f"-> at {args.threads} threads {c['now']} (effect {c['now_effect']}, p {c['now_p']})")
    for r in report["runs"]:
        print(f"  {r['decoder']:6s} seed {r['seed']}: MIG {r['mig_committed']:.4f} -> {r['mig_now']:.4f}, "
              f"NLL {r['nll_committed']:.2f} -> {r['nll_now']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
