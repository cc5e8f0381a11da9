"""What a profile changes: the preview's settings beside the paper profile's, per notebook, generated.

The rows come from the objects the notebook itself runs on, never from prose: the training recipes its
``get_or_train_all`` calls ask for (:func:`dvae_core.plan.notebook_calls`: dataset, resolution, widths,
likelihood, steps, batch size, learning rate, runs, images per run) and the fields of its experiment's
profile dataclass (evaluation sizes, sweep settings). A row is shown where the two profiles differ, with
the ratio paper / preview where both are numbers; the settings they share are listed after the table.

Run as ``python -m dvae_core.deviations <notebook>`` to print one notebook's table.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, fields, is_dataclass
from typing import Any, NamedTuple

# notebook → (paper key, experiment module) whose ``PROFILES`` hold its evaluation and sweep settings
PROFILE_SOURCES = {
    **{name: ("sbd", "") for name in ("sbd_fig2_deconv_vs_sb", "sbd_fig3_factorvae", "sbd_fig4_rate_distortion",
                                       "sbd_geometry", "sbd_heldout", "sbd_small_objects", "sbd_fig5_no_position",
                                       "sbd_explorer")},
    "fvae_metric": ("factorvae", "metric"), "fvae_tradeoff": ("factorvae", "tradeoff"),
    "fvae_tc": ("factorvae", "tradeoff"), "rae_table1": ("rae", ""), "rae_samples": ("rae", ""),
    "vlae_nll_table": ("vlae", ""), "vlae_lossy_codes": ("vlae", ""), "vlae_colour": ("vlae", "colour"),
}
# recipe fields that name an arm of the experiment (which decoder, which seed), not a setting of the profile
ARM_FIELDS = {"seed", "decoder", "variant", "kind", "checkpoint_every", "log_every", "snapshot_every",
              "pixelcnn_window", "prior", "posterior", "unconditional", "reg_weight", "beta", "gamma"}
RECIPE_LABELS = {"dataset": "dataset", "resolution": "image size (pixels)", "steps": "training steps per run",
                 "batch_size": "batch size", "lr": "learning rate", "likelihood": "likelihood"}


class Row(NamedTuple):
    setting: str
    preview: str
    paper: str
    ratio: str   # paper / preview, where both are single numbers


def _summary(values: list[Any]) -> str:
    if not values:
        return "—"
    distinct = sorted(set(values), key=lambda v: (str(type(v)), v if isinstance(v, (int, float)) else str(v)))
    if len(distinct) == 1:
        return _show(distinct[0])
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in distinct):
        return f"{_show(distinct[0])}–{_show(distinct[-1])}"
    return ", ".join(_show(v) for v in distinct[:4]) + (f" (+{len(distinct) - 4})" if len(distinct) > 4 else "")


def _show(value: Any) -> str:
    from dvae_core.verdicts import number

    if isinstance(value, tuple):
        shown = [_show(v) for v in value]
        if len(shown) > 4:
            return f"{shown[0]}, {shown[1]}, …, {shown[-1]} ({len(shown)} values)"
        return "(" + ", ".join(shown) + ")"
    return number(value)


def _ratio(preview: list[Any], paper: list[Any]) -> str:
    a, b = set(preview), set(paper)
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) and v for v in a | b)
    if numeric and len(a) > 1 and len(b) == 1:  # a range of preview values against one paper value
        y = next(iter(b))
        return f"{y / max(a):.3g}–{y / min(a):.3g} ×"
    if len(a) == 1 and len(b) == 1:
        x, y = a.pop(), b.pop()
        if isinstance(x, (int, float)) and isinstance(y, (int, float)) and not isinstance(x, bool) and x and x != y:
            return f"{y / x:.3g} ×"
    return ""


def _recipe_values(configs) -> dict[str, list[Any]]:
    """Setting → its value in each run: the recipe's own fields, its model's, the image size and images."""
    table: dict[str, list[Any]] = {}

    def add(key, value):
        if isinstance(value, (dict, list)) or value is None:
            return
        table.setdefault(key, []).append(value)

    for config in configs:
        add("dataset", config.dataset)
        add("resolution", config.dataset_kwargs.get("resolution", getattr(config.model, "resolution", None)))
        for f in fields(config):
            if f.name not in ("dataset", "dataset_kwargs", "model") and f.name not in ARM_FIELDS:
                add(f.name, getattr(config, f.name))
        for key, value in asdict(config.model).items():
            if key not in ARM_FIELDS and key != "resolution":
                add(key, value)
        add("images per run", config.steps * config.batch_size)
    return table


def _profile_values(notebook: str, profile: str) -> dict[str, Any]:
    from dvae_core.papers import paper

    if notebook not in PROFILE_SOURCES:
        return {}
    key, module = PROFILE_SOURCES[notebook]
    profiles = getattr(paper(key).module(module or None), "PROFILES", {})
    chosen = profiles.get(profile)
    if chosen is None or not is_dataclass(chosen):
        return {}
    return {k: v for k, v in asdict(chosen).items() if not isinstance(v, (dict, list)) and v is not None}


def deviations(notebook: str) -> tuple[list[Row], list[str]]:
    """The rows where ``notebook``'s preview and paper profiles differ, and the settings they share."""
    from dvae_core.plan import notebook_calls

    calls = {p: [c for call in notebook_calls(p).get(notebook, []) for c in call] for p in ("preview", "paper")}
    rows: list[Row] = []
    shared: list[str] = []
    if calls["preview"] or calls["paper"]:
        rows.append(Row("training runs", _show(len(calls["preview"])), _show(len(calls["paper"])),
                        _ratio([len(calls["preview"])], [len(calls["paper"])])))
        preview, paper_ = _recipe_values(calls["preview"]), _recipe_values(calls["paper"])
        for key in dict.fromkeys([*preview, *paper_]):
            a, b = preview.get(key, []), paper_.get(key, [])
            label = RECIPE_LABELS.get(key, key.replace("_", " "))
            if _summary(a) != _summary(b):
                rows.append(Row(label, _summary(a), _summary(b), _ratio(a, b)))
            elif a:
                shared.append(f"{label} {_summary(a)}")
    recipe_keys = {r.setting for r in rows} | set(RECIPE_LABELS) | {"steps", "batch_size", "lr"}
    preview_p, paper_p = _profile_values(notebook, "preview"), _profile_values(notebook, "paper")
    for key in dict.fromkeys([*preview_p, *paper_p]):
        if key in recipe_keys or key in ARM_FIELDS or key.replace("_", " ") in recipe_keys:
            continue
        a, b = preview_p.get(key), paper_p.get(key)
        if a != b:
            rows.append(Row(key.replace("_", " "), "—" if a is None else _show(a), "—" if b is None else _show(b),
                            _ratio([a], [b]) if a is not None and b is not None else ""))
    return rows, shared


def to_markdown(rows: list[Row], shared: list[str]) -> str:
    if not rows:
        return "The preview and paper profiles run this notebook with the same settings."
    lines = ["| setting | preview | paper profile | paper / preview |", "|---|---|---|---:|"]
    lines += [f"| {r.setting} | {r.preview} | {r.paper} | {r.ratio} |" for r in rows]
    if shared:
        lines += ["", "The same in both: " + "; ".join(shared) + "."]
    return "\n".join(lines)


def to_html(rows: list[Row], shared: list[str]) -> str:
    import html

    e = html.escape
    if not rows:
        return "<p>The preview and paper profiles run this notebook with the same settings.</p>"
    out = ['<table class="deviations"><thead><tr><th>setting</th><th>preview</th><th>paper profile</th>'
           '<th>paper / preview</th></tr></thead><tbody>']
    out += [f"<tr><td>{e(r.setting)}</td><td>{e(r.preview)}</td><td>{e(r.paper)}</td><td>{e(r.ratio)}</td></tr>"
            for r in rows]
    out.append("</tbody></table>")
    if shared:
        out.append(f"<p>The same in both: {e('; '.join(shared))}.</p>")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dvae_core.deviations", description=__doc__.split("\n\n")[0])
    parser.add_argument("notebook", help="a notebook's name, e.g. sbd_fig2_deconv_vs_sb")
    args = parser.parse_args(argv)
    if args.notebook not in PROFILE_SOURCES:
        parser.exit(2, f"error: no notebook {args.notebook!r}: choose one of {', '.join(PROFILE_SOURCES)}\n")
    print(to_markdown(*deviations(args.notebook)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
