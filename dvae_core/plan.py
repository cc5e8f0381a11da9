"""The training runs each notebook asks for under a profile, built with the same calls the notebook makes.

What a notebook will cost before it runs, and so the `paper` profile's GPU-hours on the cost page
(:func:`gpu_hours_markdown`, run as ``python -m dvae_core.plan``), come from this list: every ``get_or_train_all`` call in a
notebook's source has one list of runs here (a call inside a loop: the runs of every pass), and
``tests/test_plan.py`` checks that the two agree in number, notebook by notebook. A run that
an earlier notebook of the book already trained is free to the later one (the run store reuses it), so a
notebook's *new* runs are its runs less those of the notebooks before it.

Not counted: work outside the training runs (scoring, the RAE chapter's FID classifier, the NLL's importance
samples), which the measured notebook times include and this estimate does not.
"""

from __future__ import annotations

from typing import Callable

from dvae_core import costs
from dvae_core.train import TrainConfig


def _sbd(profile: str, seed: int) -> dict[str, list[list[TrainConfig]]]:
    from dvae_core.papers import sbd

    p, cp = sbd.profile(profile, seed_offset=seed), sbd.comparison_profile(profile, seed_offset=seed)
    return {
        "sbd_fig2_deconv_vs_sb": [sbd.fig2_configs(p),
                                  [c for bp in sbd.budget_profiles(p) for c in sbd.comparison_configs(bp)]],
        "sbd_geometry": [sbd.fig2_configs(p)],
        "sbd_fig3_factorvae": [sbd.comparison_configs(cp, factor_vae=cp.fig3_factor_vae), sbd.comparison_configs(cp)],
        "sbd_fig4_rate_distortion": [sbd.rate_distortion_configs(p)],
        "sbd_fig5_no_position": [sbd.comparison_configs(cp, dataset="shapes3d")],
        "sbd_heldout": [sbd.comparison_configs(cp, dataset_kwargs={"holdout": sbd.HOLDOUT_REGION})],
        "sbd_small_objects": [sbd.comparison_configs(cp, dataset_kwargs={"scale_values": sbd.SMALL_SCALES}),
                              sbd.comparison_configs(cp)],
    }


def _factorvae(profile: str, seed: int) -> dict[str, list[list[TrainConfig]]]:
    from dvae_core.papers.factorvae import tradeoff as ft

    p = ft.profile(profile, seed_offset=seed)
    tradeoff = [ft.tradeoff_configs(p, "dsprites"), ft.gan_configs(p, "dsprites")]
    if "shapes3d" in p.datasets:
        tradeoff.append(ft.tradeoff_configs(ft.for_dataset(p, "shapes3d"), "shapes3d"))
    return {"fvae_tradeoff": tradeoff, "fvae_tc": [ft.trajectory_configs(p, "dsprites")]}


def _rae(profile: str, seed: int) -> dict[str, list[list[TrainConfig]]]:
    from dvae_core.papers import rae

    configs = rae.run_configs(rae.profile(profile), seed=seed, dataset="fashion_mnist", root=None)
    return {"rae_table1": [configs], "rae_samples": [configs]}


def _vlae(profile: str, seed: int) -> dict[str, list[list[TrainConfig]]]:
    from dvae_core.papers import vlae
    from dvae_core.papers.vlae import colour

    p = vlae.profile(profile)
    return {"vlae_nll_table": [vlae.seeded_table_configs(p, seed)], "vlae_lossy_codes": [vlae.sweep_configs(p, seed)],
            "vlae_colour": [colour.all_colour_configs(colour.profile(profile), seed)]}


#: Per paper, the notebooks that train and, for each, one list of runs per ``get_or_train_all`` call site.
BUILDERS: tuple[Callable[[str, int], dict[str, list[list[TrainConfig]]]], ...] = (_sbd, _factorvae, _rae, _vlae)


def notebook_calls(profile: str, seed: int = 0) -> dict[str, list[list[TrainConfig]]]:
    """Notebook name → the runs of each of its ``get_or_train_all`` call sites, under ``profile`` and ``seed``."""
    calls: dict[str, list[list[TrainConfig]]] = {}
    for build in BUILDERS:
        calls.update(build(profile, seed))
    return calls


def new_runs(profile: str, order: list[str], seed: int = 0) -> dict[str, list[TrainConfig]]:
    """For each notebook in book ``order`` that trains, the runs it is the first to ask for (by run hash)."""
    from dvae_core.runs import config_hash

    calls, seen, out = notebook_calls(profile, seed), set(), {}
    for name in order:
        fresh = []
        for config in (c for call in calls.get(name, []) for c in call):
            h = config_hash(config)
            if h not in seen:
                seen.add(h)
                fresh.append(config)
        if name in calls:
            out[name] = fresh
    return out


def gpu_hours_table(profile: str = "paper", seed: int = 0):
    """Per notebook of the book (in its order) that trains: the runs it is the first to ask for under
    ``profile`` (:func:`new_runs`), their training images and estimated GPU-hours."""
    import pandas as pd

    from dvae_core.papers import paper_of_notebook
    from dvae_core.reproduce import book_notebooks

    order = [nb.stem for nb in book_notebooks()]
    rows = []
    for name, configs in new_runs(profile, order, seed).items():
        owner = paper_of_notebook(name)
        rows.append({"chapter": owner.title if owner else "—", "notebook": name, "new runs": len(configs),
                     "training images": sum(c.steps * c.batch_size for c in configs),
                     "GPU-hours": sum(costs.run_gpu_seconds(c) for c in configs) / 3600})
    return pd.DataFrame(rows)


def gpu_hours_markdown(profile: str = "paper") -> str:
    """The cost page's fragment: :func:`gpu_hours_table` per notebook, with chapter and book totals."""
    table = gpu_hours_table(profile)
    lines = ["% Generated by `python -m dvae_core.plan`; do not edit by hand.",
             "| chapter | notebook | new runs | training images | GPU-hours (estimated) |", "|---|---|---|---|---|"]
    def images(n: float) -> str:
        return f"{n / 1e6:,.0f} M" if n >= 1e6 else f"{n:,.0f}"

    def hours(h: float) -> str:
        return f"{h:,.0f}" if h >= 10 else f"{h:.2g}"

    for chapter, rows in table.groupby("chapter", sort=False):
        for r in rows.to_dict(orient="records"):
            lines.append(f"| {chapter} | `{r['notebook']}` | {r['new runs']:,} | {images(r['training images'])} | "
                         f"{hours(r['GPU-hours'])} |")
        lines.append(f"| **{chapter}** | all | {rows['new runs'].sum():,} | {images(rows['training images'].sum())} | "
                     f"**{hours(rows['GPU-hours'].sum())}** |")
    lines.append(f"| **the book** | | {table['new runs'].sum():,} | {images(table['training images'].sum())} | "
                 f"**{hours(table['GPU-hours'].sum())}** |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    import argparse

    from dvae_core.infra import GENERATED_DIR, atomic_write_text

    parser = argparse.ArgumentParser(prog="python -m dvae_core.plan",
                                     description="Write the cost page's estimate of the paper profile's GPU-hours.")
    parser.add_argument("--profile", default="paper")
    args = parser.parse_args(argv)
    target = GENERATED_DIR / f"{args.profile}_gpu_hours.md"
    atomic_write_text(target, gpu_hours_markdown(args.profile))
    print(target)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
