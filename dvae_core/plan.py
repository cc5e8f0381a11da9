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
    return {"vlae_nll_table": [vlae.seeded_table_configs(p, seed)],
            "vlae_lossy_codes": [vlae.seeded_sweep_configs(p, seed)],
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


def reader_cost_markdown(timings: dict[str, float] | None = None) -> str:
    """The cost page's first table, for readers: per notebook of the book, the preview's measured CPU minutes
    (``results/preview/timings.json``), its training images per run, and the ``paper`` profile's images per
    run (with the ratio) and estimated GPU-hours; the chapter's notebooks, then the book's total."""
    import json

    from dvae_core.infra import RESULTS_DIR
    from dvae_core.reproduce import book_notebooks

    if timings is None:
        path = RESULTS_DIR / "preview" / "timings.json"
        timings = json.loads(path.read_text()) if path.exists() else {}
    order = [nb.stem for nb in book_notebooks()]
    calls = {p: notebook_calls(p) for p in ("preview", "paper")}
    fresh = new_runs("paper", order)
    fresh_preview = new_runs("preview", order)

    def per_run(profile: str, name: str) -> list[int]:
        return [c.steps * c.batch_size for call in calls[profile].get(name, []) for c in call]

    def span(values: list[int]) -> str:
        if not values:
            return "—"
        low, high = min(values), max(values)
        return f"{low:,}" if low == high else f"{low:,}–{high:,}"

    lines = ["% Generated by `python -m dvae_core.plan` from results/preview/timings.json and the notebooks' "
             "recipes; do not edit by hand.",
             "| notebook | preview: CPU minutes (measured, 2 cores) | preview: GPU-minutes (estimated) | preview: "
             "images per run | paper profile: images per run | × | paper profile: GPU-hours (estimated) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    total_minutes = total_hours = total_preview_gpu = 0.0
    for name in order:
        minutes = timings.get(name)
        total_minutes += minutes / 60 if minutes else 0.0
        preview, paper = per_run("preview", name), per_run("paper", name)
        if preview and paper:
            low, high = max(paper) / max(preview), max(paper) / min(preview)
            ratio = f"{low:,.0f}" if round(low) == round(high) else f"{low:,.0f}–{high:,.0f}"
        else:
            ratio = "—"
        preview_gpu = sum(costs.run_gpu_seconds(c) for c in fresh_preview.get(name, [])) / 60
        hours = sum(costs.run_gpu_seconds(c) for c in fresh.get(name, [])) / 3600
        total_hours += hours
        total_preview_gpu += preview_gpu
        label = f"[{name}](../notebooks/{name}.ipynb)"
        gpu = "0 (reuses earlier runs)" if name in fresh and not fresh[name] else (
            f"{hours:,.0f}" if hours >= 10 else f"{hours:.2g}" if name in fresh else "—")
        lines.append(f"| {label} | {f'{minutes / 60:.1f}' if minutes else 'not measured'} | "
                     f"{f'{preview_gpu:.2g}' if name in fresh_preview else '—'} | {span(preview)} | "
                     f"{span(paper)} | {ratio} | {gpu} |")
    lines.append(f"| **the book** | **{total_minutes:.0f}** ({total_minutes / 60:.1f} h) | **{total_preview_gpu:.0f}** "
                 f"| | | | **{total_hours:,.0f}** |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    import argparse

    from dvae_core.infra import GENERATED_DIR, atomic_write_text

    parser = argparse.ArgumentParser(prog="python -m dvae_core.plan",
                                     description="Write the cost page's tables: the paper profile's GPU-hours, "
                                                 "and every notebook's cost for readers.")
    parser.add_argument("--profile", default="paper")
    args = parser.parse_args(argv)
    target = GENERATED_DIR / f"{args.profile}_gpu_hours.md"
    atomic_write_text(target, gpu_hours_markdown(args.profile))
    print(target)
    if args.profile == "paper":
        readers = GENERATED_DIR / "cost_by_notebook.md"
        atomic_write_text(readers, reader_cost_markdown())
        print(readers)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
