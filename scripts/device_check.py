"""The GPU device check (issue 18): decide, on one GPU in minutes, the claims that 2 CPU cores cannot.

Runs, in order of what they decide, SBD Fig. 2 (VAE: SB vs DeConv, MIG and reconstruction), SBD Fig. 3
(the same inside a FactorVAE) and the FactorVAE chapter's β-VAE vs FactorVAE trade-off on dSprites, each
at the sizes of ``--scale`` (:data:`SCALES`: images per run and seed pairs are stated there and in the
output), on seeds no notebook uses (offset :data:`SEED_OFFSET`). Every claim is decided by the book's own
functions and rules (``sbd.comparison_claims``, ``tradeoff.tradeoff_claims``), so a verdict here means what
it means in the book. Each check writes ``<OUT>/<check>.json`` (its claims, its run table, its sizes and
wall time) as soon as it is done, so a check cut off by a time limit keeps the ones before it;
``<OUT>/device_check.json`` sums them up.

It needs only torch, numpy, scipy, scikit-learn, pandas, h5py, matplotlib, seaborn and tqdm: no Jupyter, no
papermill, nothing from a registry. On the GPU machine, from the repository root::

    PYTHONPATH=. python3 scripts/device_check.py --scale gpu --out $OUT --jobs 8

``--scale tiny`` (smoke-profile models, a few steps, on the CPU) is what CI runs, so the script cannot rot.
Runs train ``--jobs`` at a time (processes; on one GPU they share it, on several each takes its own) into
``<OUT>/runs`` unless ``--store`` says otherwise.

First, the multi-run measurement (``multi_run``, :func:`run_multi_run`) trains Fig. 2's models three ways (one
after another, ``--jobs`` processes, one vectorised ensemble) and writes their images/s to
``<OUT>/multi_run.json``; with ``--ensemble auto`` (the default) the faster of processes and ensembles is how
the checks after it train their runs (``summary["ensemble"]``: the most runs per ensemble, 1 for processes).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere, without installing the package
    sys.path.insert(0, str(ROOT))

from dvae_core.bench import measure_multi_run  # noqa: E402
from dvae_core.data import make_dataset  # noqa: E402
from dvae_core.infra import atomic_write_text, resolve_device  # noqa: E402
from dvae_core.papers import sbd  # noqa: E402
from dvae_core.papers.factorvae import tradeoff as ft  # noqa: E402
from dvae_core.sweep import get_or_train_all  # noqa: E402

#: Seeds 5000 and up: no notebook, pilot or earlier check has used them.
SEED_OFFSET = 5000


@dataclass(frozen=True)
class Scale:
    """The sizes of one device check: the base profile, and per check its steps and replicates."""

    profile: str            # the profile whose models and evaluation sizes the check uses
    fig2_steps: int
    fig2_pairs: int         # SB/DeConv seed pairs
    fig3_steps: int
    fig3_pairs: int
    tradeoff_steps: int
    tradeoff_seeds: int     # seeds of the whole β × γ sweep
    multi_run_runs: int     # runs per decoder in the multi-run measurement (Fig. 2's models)
    multi_run_steps: int    # steps of each of them


SCALES = {
    # CI, on the CPU: smoke models, a few steps, two replicates (every verdict is "inconclusive")
    "tiny": Scale("smoke", fig2_steps=12, fig2_pairs=2, fig3_steps=12, fig3_pairs=2, tradeoff_steps=12,
                  tradeoff_seeds=2, multi_run_runs=2, multi_run_steps=4),
    # one GPU, about 10 minutes (sized from the CPU cost and the expected GPU speed-up; the output says
    # what it took): Fig. 2 at the budget curve's longest 216k images per run on 24 pairs, Fig. 3 at 72k
    # images on 12 pairs, the trade-off at twice the preview's steps on 8 seeds; the multi-run measurement
    # trains 16 runs per decoder for 200 steps three ways (multi_run.json records how long it took)
    "gpu": Scale("preview", fig2_steps=13_500, fig2_pairs=24, fig3_steps=4_500, fig3_pairs=12, tradeoff_steps=3_000,
                 tradeoff_seeds=8, multi_run_runs=16, multi_run_steps=200),
}
CHECKS = ("multi_run", "sbd_fig2", "sbd_fig3", "fvae_tradeoff")
#: The largest ensemble the checks train when the measurement chooses ensembles (every Fig. 2 run of a decoder).
LARGEST_ENSEMBLE = 64


def sbd_profile(scale: Scale, steps: int, pairs: int) -> sbd.SBDProfile:
    p = sbd.profile(scale.profile)
    return replace(p, steps=steps, seeds=tuple(range(SEED_OFFSET, SEED_OFFSET + pairs)))


def run_multi_run(scale: Scale, device: str, jobs: int, store: Path) -> dict:
    """How many runs of one architecture are best trained on this device
    (:func:`dvae_core.bench.measure_multi_run`): Fig. 2's SB and DeConv models at the check's profile,
    ``multi_run_runs`` runs of each for ``multi_run_steps`` steps, one after another, as ``jobs`` processes and
    as one ensemble. Its choice is how the other checks then train."""
    p = sbd_profile(scale, scale.multi_run_steps, scale.multi_run_runs)
    result = measure_multi_run(sbd.comparison_configs(p), device, jobs, store)
    return {**result, "profile": scale.profile, "images_per_run": scale.multi_run_steps * p.batch_size}


def run_sbd(scale: Scale, figure: str, device: str, jobs: int, store: Path, ensemble: int = 1) -> dict:
    steps, pairs = ((scale.fig2_steps, scale.fig2_pairs) if figure == "fig2" else (scale.fig3_steps, scale.fig3_pairs))
    p = sbd_profile(scale, steps, pairs)
    factor_vae = p.fig3_factor_vae if figure == "fig3" else None
    configs = sbd.comparison_configs(p, factor_vae=factor_vae)
    runs = get_or_train_all(configs, store=store, device=device, jobs=jobs, evaluate=sbd.scorer(p), ensemble=ensemble)
    table = sbd.fig2_table([run["evaluation"] for run in runs])
    setting = "VAE on colored sprites" if figure == "fig2" else "FactorVAE on colored sprites"
    claims = sbd.comparison_claims(table, f"sbd-{figure}", setting, f"Fig. {figure[-1]}", p=p, runs=runs)
    return {"claims": claims, "table": table, "images_per_run": steps * p.batch_size, "replicates": pairs,
            "runs": len(configs)}


def run_tradeoff(scale: Scale, device: str, jobs: int, store: Path, ensemble: int = 1) -> dict:
    p = ft.profile(scale.profile)
    p = replace(p, steps=scale.tradeoff_steps, datasets=("dsprites",),
                seeds=tuple(range(SEED_OFFSET, SEED_OFFSET + scale.tradeoff_seeds)))
    dataset = make_dataset("dsprites", resolution=p.resolution)
    configs = ft.tradeoff_configs(p, "dsprites")
    runs = get_or_train_all(configs, store=store, device=device, jobs=jobs,
                            evaluate=partial(ft.evaluate_run, dataset=dataset, p=p), ensemble=ensemble)
    table = ft.tradeoff_table([run["evaluation"] for run in runs])
    claims = ft.tradeoff_claims(table, "dsprites", p, cost=ft.sweep_cost(runs, p))
    return {"claims": claims, "table": table, "images_per_run": p.steps * p.batch_size,
            "replicates": len(p.seeds), "runs": len(configs)}


def device_info(device: str) -> dict:
    dev = resolve_device(device)
    info = {"device": str(dev), "torch": torch.__version__, "python": platform.python_version(),
            "host": platform.node()}
    if dev.type == "cuda":
        info.update(gpu=torch.cuda.get_device_name(dev), gpus_visible=torch.cuda.device_count())
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="the folder to write results into")
    parser.add_argument("--scale", choices=sorted(SCALES), default="tiny")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    parser.add_argument("--jobs", type=int, default=1, help="runs trained at once (processes)")
    parser.add_argument("--store", type=Path, help="the run store (default <OUT>/runs)")
    parser.add_argument("--only", choices=CHECKS, action="append", help="run only this check (repeatable)")
    parser.add_argument("--ensemble", default="auto",
                        help="runs trained together as one vectorised ensemble: auto (the multi-run measurement "
                             "chooses; processes without it), or the most runs per ensemble (1: every run alone)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.exit(2, f"error: --jobs {args.jobs}: give 1 or more\n")
    if args.ensemble != "auto" and not (args.ensemble.isdigit() and int(args.ensemble) >= 1):
        parser.exit(2, f"error: --ensemble {args.ensemble}: give auto or a whole number, 1 or more\n")
    try:
        info = device_info(args.device)
    except ValueError as err:
        parser.exit(2, f"error: --device: {err}\n")
    scale = SCALES[args.scale]
    args.out.mkdir(parents=True, exist_ok=True)
    store = args.store or args.out / "runs"
    ensemble = 1 if args.ensemble == "auto" else int(args.ensemble)
    summary = {**info, "scale": args.scale, "sizes": asdict(scale), "seed_offset": SEED_OFFSET, "jobs": args.jobs,
               "ensemble": ensemble, "checks": {}}
    started = time.perf_counter()
    checks = args.only or CHECKS
    for check in [c for c in CHECKS if c in checks]:
        t0 = time.perf_counter()
        if check == "multi_run":
            result = run_multi_run(scale, args.device, args.jobs, store / "multi_run")
            if args.ensemble == "auto":
                ensemble = LARGEST_ENSEMBLE if result["choice"] == "ensemble" else 1
                summary["ensemble"] = ensemble
            seconds = time.perf_counter() - t0
            record = {**info, "check": check, "scale": args.scale, "wall_seconds": round(seconds, 1), **result}
            atomic_write_text(args.out / f"{check}.json", json.dumps(record, indent=1) + "\n")
            summary["checks"][check] = {"wall_seconds": round(seconds, 1), "choice": result["choice"],
                                        "ensemble_used": ensemble, "results": result["results"]}
            for decoder, ways in result["results"].items():
                print(f"{check}: {decoder}: " + ", ".join(
                    f"{way} {m['images_per_s']:,.0f} images/s ({m['steady_images_per_s']:,.0f} steady)"
                    for way, m in ways.items()) + f" ({result['runs_per_model']} runs)", flush=True)
            print(f"{check}: chose {result['choice']} (ensembles of up to {ensemble} runs) in {seconds:.0f} s",
                  flush=True)
        else:
            if check == "fvae_tradeoff":
                result = run_tradeoff(scale, args.device, args.jobs, store, ensemble)
            else:
                result = run_sbd(scale, check.removeprefix("sbd_"), args.device, args.jobs, store, ensemble)
            seconds = time.perf_counter() - t0
            claims = [asdict(c) for c in result["claims"]]
            record = {**info, "check": check, "scale": args.scale, "seed_offset": SEED_OFFSET,
                      "images_per_run": result["images_per_run"], "replicates": result["replicates"],
                      "runs": result["runs"], "wall_seconds": round(seconds, 1), "claims": claims,
                      "table": result["table"].round(5).to_dict(orient="records")}
            atomic_write_text(args.out / f"{check}.json", json.dumps(record, indent=1, default=str) + "\n")
            summary["checks"][check] = {
                "wall_seconds": round(seconds, 1), "images_per_run": result["images_per_run"],
                "replicates": result["replicates"],
                "verdicts": {c["id"]: c["verdict"] + (f" ({c['reason']})" if c["reason"] else "") for c in claims}}
            for c in claims:
                print(f"{check}: {c['id']}: {c['verdict']}" + (f" ({c['reason']})" if c["reason"] else "")
                      + f" — {c['explanation']}", flush=True)
            print(f"{check}: {result['runs']} runs of {result['images_per_run']:,} images in {seconds:.0f} s",
                  flush=True)
        summary["wall_seconds"] = round(time.perf_counter() - started, 1)
        atomic_write_text(args.out / "device_check.json", json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
