"""How the book shows a verdict: one formatter for the notebooks, their pages and the scorecard.

A reader meets each claim as a card: the verdict badge first, then the paper's claim in full, our
number beside the paper's (three significant figures, with the measure that gives the units), why an
inconclusive verdict is inconclusive and what would decide it, the rule in one sentence (the full rule
folded away), and the scale the number was measured at (training images per run against the paper's,
runs that passed their learning gate, seeds).

:func:`view` turns one results record (``results/<profile>/<notebook>.json``, or a
:class:`~dvae_core.claims.Claim`) into a :class:`VerdictView`. Two renderers print the same fields of
the same view: :func:`to_myst` (the scorecard page, with sphinx-design badges and links to the
notebooks) and :func:`to_html` (self-contained HTML: a notebook's output in Jupyter, and the verdicts
of each notebook page of the book). :func:`show_claims` is what a notebook's last cell displays.
"""

from __future__ import annotations

import ast
import html
import math
import re
from dataclasses import asdict, dataclass, is_dataclass
from typing import Any, Iterable, Mapping, Sequence

# verdict → (sphinx-design badge, colour of the HTML badge)
TONES = {"reproduced": ("bdg-success", "#1a7f37"), "passed": ("bdg-success", "#1a7f37"),
         "not reproduced": ("bdg-danger", "#cf222e"), "failed": ("bdg-danger", "#cf222e"),
         "inconclusive": ("bdg-warning", "#9a6700")}
# dvae_core.rules.Reason → what it means for a reader
REASONS = {"underpowered": "too few replicates to decide at the effect and spread we measured",
           "too few replicas": "a curve needs at least three runs per point",
           "under-trained": "too few runs passed their learning gate",
           "collapsed": "too many runs' posteriors collapsed (KL below 1 nat)"}
# how the words of a results key read in prose (sb_median → "SB median")
WORDS = {"sb": "SB", "deconv": "DeConv", "kl": "KL", "nll": "NLL", "mig": "MIG", "se": "s.e.", "vae": "VAE",
         "af": "AF", "iaf": "IAF", "fid": "FID", "vlae": "VLAE", "pixelcnn": "PixelCNN", "rho": "ρ", "tc": "TC",
         "gmm": "GMM", "num": "number of", "factorvae": "FactorVAE", "infowgan": "InfoWGAN-GP", "gan": "GAN"}
# names of two words, read before the words are split
COMPOUNDS = {"beta_vae": "β-VAE", "factor_vae": "FactorVAE", "info_wgan": "InfoWGAN-GP"}
# results keys that hold per-seed or per-run lists: the results file keeps them, a card does not
PER_REPLICATE = re.compile(r"^per_|^seeds?$")


@dataclass(frozen=True)
class VerdictView:
    """Everything a card shows, as text; both renderers use exactly these fields."""
    id: str
    notebook: str
    kind: str          # "reproduction" or "check"
    verdict: str
    badge: str         # sphinx-design role
    colour: str        # the HTML badge's colour
    claim: str
    ours: str
    paper: str
    measure: str
    why: str           # the reason (in words) and the verdict's numbers
    rule: str          # the test in one sentence
    rule_full: str
    scale: str         # training budget, learning gates, seeds
    compare: str       # why the paper's number and ours are on different scales ("" where they are not)
    stale: str
    gpu: str = ""      # the same claim decided by the GPU device check, where one is on record

    @property
    def label(self) -> str:
        return self.verdict + (" (check)" if self.kind == "check" else "")


def number(value: Any) -> str:
    """A number as a reader wants it: whole numbers with thousands separators, others to three
    significant figures, never in exponent form between 0.001 and 10⁹."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e9):
            return f"{value:.3g}"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{float(f'{value:.3g}'):g}"
    return str(value)


def words(key: str) -> str:
    """A results key in prose: ``deconv_median`` → ``DeConv median``, ``p_colour`` → ``p colour``."""
    key = str(key)
    for compound, name in COMPOUNDS.items():
        key = key.replace(compound, name)
    return " ".join(WORDS.get(part.lower(), part) for part in key.split("_"))


def _looks_per_replicate(key: str, value: Any) -> bool:
    if isinstance(value, (list, tuple)) or PER_REPLICATE.search(str(key)):
        return True
    # {"2000": …, "2001": …}: one entry per seed
    return isinstance(value, Mapping) and bool(value) and all(str(k).isdigit() for k in value)


def values(value: Any) -> str:
    """A claim's value (ours or the paper's) as one line: scalars by name, one level of nested per-model
    numbers as ``AE: N 102, GMM 36.4``; per-seed and per-run entries are left to the results file."""
    if isinstance(value, Mapping):
        parts = []
        for key, item in value.items():
            if _looks_per_replicate(key, item):
                continue
            if isinstance(item, Mapping):
                inner = ", ".join(f"{words(k)} {number(v)}" for k, v in item.items()
                                  if not isinstance(v, (Mapping, list, tuple)))
                parts.append(f"{key}: {inner}")
            else:
                parts.append(f"{words(key)} {number(item)}")
        return "; ".join(parts) or "per seed: see the results file"
    if isinstance(value, str) and value.startswith("{"):
        # a paper value written as the str() of a dict: show its numbers, not Python's syntax
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value
        return values(parsed) if isinstance(parsed, Mapping) else value
    return number(value)


def _seeds(seeds: Sequence[int] | None) -> str:
    if not seeds:
        return ""
    seeds = sorted(int(s) for s in seeds)
    if seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 2:
        return f"seeds {seeds[0]}–{seeds[-1]}"
    return ("seed " if len(seeds) == 1 else "seeds ") + ", ".join(map(str, seeds))


def scale(record: Mapping) -> str:
    """Training images per run against the paper's, gate counts and seeds, as one sentence."""
    parts = []
    budget = record.get("budget")
    if budget:
        images, paper = budget["images_per_run"], budget["paper_images_per_run"]
        share = f"1/{number(round(paper / images))}" if 0 < images < paper else f"{number(images / paper)} ×"
        parts.append(f"{number(budget['images_per_run'])} training images per run, {share} of the paper's "
                     f"{number(budget['paper_images_per_run'])}")
    gate = record.get("gate")
    if gate and gate.get("runs"):
        collapsed = f" ({gate['collapsed']} collapsed)" if gate.get("collapsed") else ""
        parts.append(f"{gate['passed']} of {gate['runs']} runs passed their learning gate{collapsed}")
    seeds = _seeds(record.get("seeds"))
    if seeds:
        parts.append(seeds)
    return "; ".join(parts)


def gpu_line(check: Mapping) -> str:
    """One sentence for a claim the GPU device check decided (``scripts/device_check.py``: the claim's record
    with the check's ``images_per_run``, ``replicates``, ``gpu`` or ``device`` beside it)."""
    verdict = check["verdict"] + (f" ({check['reason']})" if check.get("reason") else "")
    where = check.get("gpu") or check.get("device") or "a GPU"
    return (f"{verdict} on {where}, {number(check['images_per_run'])} training images per run, "
            f"{check['replicates']} replicates: {check.get('explanation') or ''}").rstrip(": ")


def view(record: Mapping | Any, gpu: Mapping | None = None) -> VerdictView:
    """The card of one claim: a results record (dict) or a :class:`~dvae_core.claims.Claim`; ``gpu``, the same
    claim as the GPU device check decided it (:func:`gpu_line`), if it did."""
    if is_dataclass(record):
        record = asdict(record)
    verdict = record["verdict"]
    badge, colour = TONES[verdict]
    reason = record.get("reason")
    explanation = record.get("explanation") or ""
    why = f"{reason} ({REASONS.get(reason, reason)})" if reason else ""
    if explanation:
        why = f"{why}: {explanation}" if why else explanation
    rule = record.get("rule") or ""
    # the rules' sentences open with the test, then say what each verdict needs after a colon
    short = rule.split(":", 1)[0].strip() if ":" in rule else rule
    return VerdictView(
        id=record["id"], notebook=record.get("notebook", ""), kind=record.get("kind", "reproduction"),
        verdict=verdict, badge=badge, colour=colour, claim=record["claim"], ours=values(record.get("ours")),
        paper=values(record.get("paper_value")), measure=record.get("metric", ""), why=why, rule=short,
        rule_full=rule, scale=scale(record), compare=_value_note(record.get("notebook", "")),
        stale=record.get("stale") or "", gpu=gpu_line(gpu) if gpu else "")


def _value_note(notebook: str) -> str:
    from dvae_core.papers import paper_of_notebook

    owner = paper_of_notebook(notebook) if notebook else None
    return dict(owner.value_notes).get(notebook, "") if owner else ""


def _lines(v: VerdictView) -> list[tuple[str, str]]:
    """The card's labelled lines, in the order both renderers print them."""
    lines = [("Ours", f"{v.ours} ({v.measure})" if v.measure else v.ours), ("Paper", v.paper)]
    if v.compare:
        lines.append(("Compare", v.compare))
    if v.why:
        lines.append(("Why" if v.verdict == "inconclusive" else "Numbers", v.why))
    if v.scale:
        lines.append(("Scale", v.scale))
    if v.gpu:
        lines.append(("GPU check", v.gpu))
    if v.stale:
        lines.append(("Stale", v.stale))
    return lines


def _myst_text(text: str) -> str:
    # a card's text is plain: nothing in it may open a role, a link or emphasis
    return re.sub(r"([`*_\[\]<>|\\])", r"\\\1", text)


def to_myst(views: Iterable[VerdictView]) -> str:
    """Cards as MyST for a book page: one sphinx-design card per claim, badge first, the full rule folded."""
    out = []
    for v in views:
        out += ["::::{card}", f":class-card: verdict-card verdict-{v.verdict.replace(' ', '-')}", "",
                "{" + v.badge + "}`" + v.label + "` **" + _myst_text(v.claim) + "**", ""]
        for name, text in _lines(v):
            out.append(f"**{name}:** {_myst_text(text)}" + "\\")
        out[-1] = out[-1].rstrip("\\")
        out += ["", f":::{{dropdown}} Rule: {_myst_text(v.rule)}", _myst_text(v.rule_full), ":::", "",
                f"`{v.id}`", "::::", ""]
    return "\n".join(out)


CARD_STYLE = ("border:1px solid #d0d7de;border-radius:6px;padding:0.6em 0.8em;margin:0.6em 0;"
              "max-width:100%;overflow-wrap:anywhere")
BADGE_STYLE = "display:inline-block;color:#fff;border-radius:1em;padding:0 0.6em;font-size:0.85em;font-weight:600"


def to_html(views: Iterable[VerdictView]) -> str:
    """Cards as self-contained HTML (inline styles: it reads the same in Jupyter and in the book)."""
    e = html.escape
    out = ['<div class="verdict-cards">']
    for v in views:
        out.append(f'<div class="verdict-card verdict-{v.verdict.replace(" ", "-")}" id="claim-{e(v.id)}" '
                   f'style="{CARD_STYLE}">')
        out.append(f'<p style="margin:0 0 0.3em 0"><span class="verdict-badge" style="{BADGE_STYLE};'
                   f'background:{v.colour}">{e(v.label)}</span> <strong>{e(v.claim)}</strong></p>')
        for name, text in _lines(v):
            out.append(f'<p style="margin:0.15em 0"><strong>{name}:</strong> {e(text)}</p>')
        out.append(f'<details style="margin-top:0.3em"><summary>Rule: {e(v.rule)}</summary>'
                   f'<p style="margin:0.3em 0">{e(v.rule_full)}</p></details>')
        out.append(f'<p style="margin:0.2em 0 0 0;color:#57606a;font-size:0.85em"><code>{e(v.id)}</code></p>')
        out.append("</div>")
    out.append("</div>")
    return "\n".join(out)


def to_text(views: Iterable[VerdictView]) -> str:
    """Plain text (a terminal, or a notebook's text/plain output)."""
    blocks = []
    for v in views:
        blocks.append("\n".join([f"[{v.label}] {v.claim}", *(f"  {n}: {t}" for n, t in _lines(v)),
                                 f"  Rule: {v.rule}"]))
    return "\n\n".join(blocks)


class VerdictCards:
    """What a notebook's last cell displays: the cards of its claims (HTML in Jupyter and the book)."""

    def __init__(self, claims: Sequence[Any]):
        self.views = [view(c) for c in claims]

    def _repr_html_(self) -> str:
        return to_html(self.views)

    def __repr__(self) -> str:
        return to_text(self.views)


def show_claims(claims: Sequence[Any]) -> VerdictCards:
    """The verdict cards of a notebook's claims, for its last cell."""
    return VerdictCards(claims)
