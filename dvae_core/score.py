"""Score your own model: ``python -m dvae_core.score``.

Two ways in::

    python -m dvae_core.score --codes codes.npz --factors factors.npz [--dataset dsprites]
    python -m dvae_core.score --run runs/<hash>          # a run of the book's run store

``codes.npz`` holds one array (n, d) of codes (the posterior means, say), under the key ``codes`` or as
its only array; ``factors.npz`` the matching (n, K) integer factor classes, under ``factors`` or alone.
``--run`` encodes fresh draws of the run's own dataset with the run's posterior mean. ``codes.npz`` may also
hold ``stds``, the posterior standard deviations (n, d) of the same points.

It prints MIG, DCI (disentanglement, completeness, informativeness), SAP, the FactorVAE metric and
the β-VAE metric, each with disentanglement_lib's defaults (10,000 training and 5,000 test points;
``--num-train`` / ``--num-test`` change them), and places MIG and the FactorVAE metric against the
book's committed preview runs on the same dataset (``results/preview/``). The FactorVAE and β-VAE
metrics intervene on factors (batches that share one factor's value), so from files they are scored
only when the factors cover a full grid (every combination of the classes seen, once each): then a
batch with factor k fixed is looked up, exactly as a renderer would draw it. Otherwise they are left
out, and the command says why.

Beside MIG it prints a panel that scores the same points with the two estimators of MIG's mutual
information in use: the 20-bin histogram of the posterior means (disentanglement_lib's, the book's) and
the sampled-posterior estimator of Chen et al. (:mod:`dvae_core.metrics.mig_sampled`; it needs the
posterior standard deviations: always there for ``--run``, from ``stds`` in ``codes.npz``), with why
published MIG values differ.

Rows of the files are shuffled with ``--seed`` and split into training and test points (2 : 1 when
there are fewer than ``num_train + num_test``). Bad input ends with one ``error: …`` line and exit 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

from dvae_core.data.base import FactorDataset
from dvae_core.infra import RESULTS_DIR
from dvae_core.metrics.mig_sampled import as_stds

#: The book's preview runs per dataset, for placing a score: (results file, key of its run rows).
BOOK_RUNS = {"colored_sprites": [("sbd_fig2_deconv_vs_sb", "runs"), ("sbd_fig4_rate_distortion", "runs")],
             "dsprites": [("fvae_tradeoff", "runs")],
             "shapes3d": [("fvae_tradeoff", "shapes3d_runs"), ("sbd_fig5_no_position", "runs")]}


class ScoreInputError(ValueError):
    """Input the scores cannot be computed from."""


class CodeTable(FactorDataset):
    """Codes on a full factor grid, served as a dataset: ``images(factors)`` are the rows' grid indices, and
    :meth:`encode` looks their codes up, so the intervention metrics draw from the table as from a renderer."""

    name = "code table"
    image_shape = (1, 1, 1)

    def __init__(self, codes: np.ndarray, factors: np.ndarray):
        self.factor_sizes = tuple(int(s) for s in factors.max(axis=0) + 1)
        self.factor_names = tuple(f"factor {k}" for k in range(factors.shape[1]))
        self.table = np.empty_like(codes)
        self.table[self.factors_to_index(factors)] = codes

    @staticmethod
    def covers_grid(factors: np.ndarray) -> bool:
        sizes = factors.max(axis=0) + 1
        if factors.min() < 0 or math.prod(int(s) for s in sizes) != len(factors):
            return False
        return np.unique(np.ravel_multi_index(tuple(factors.T), tuple(sizes))).size == len(factors)

    def images(self, factors: np.ndarray) -> torch.Tensor:
        index = self.factors_to_index(self._check_factors(np.asarray(factors, dtype=np.int64)))
        return torch.from_numpy(index).reshape(-1, 1, 1, 1)

    def encode(self, images: torch.Tensor) -> np.ndarray:
        return self.table[images.reshape(-1).numpy()]


def load_array(path: Path, key: str) -> np.ndarray:
    if not path.is_file():
        raise ScoreInputError(f"{path}: no such file (give the .npz that holds the {key})")
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = list(archive.files)
            if key in names:
                return archive[key]
            if len(names) == 1:
                return archive[names[0]]
    except (OSError, ValueError) as error:
        raise ScoreInputError(f"{path}: not a numpy .npz archive ({error}): save it with np.savez") from None
    raise ScoreInputError(f"{path}: holds {names or 'no arrays'}, none named {key!r}: save it with "
                          f"np.savez(path, {key}=array)")


def load_optional(path: Path, key: str) -> np.ndarray | None:
    """``key`` of the archive at ``path`` if it holds one (the archive itself was checked by :func:`load_array`)."""
    with np.load(path, allow_pickle=False) as archive:
        return archive[key] if key in archive.files else None


def check_inputs(codes: np.ndarray, factors: np.ndarray, codes_path, factors_path) -> tuple[np.ndarray, np.ndarray]:
    """The metrics' own checks (:func:`~dvae_core.metrics.encode.as_codes`, MIG's factor check), with the file
    named, and the two that only files need: the same rows in both, and enough of them to split."""
    from dvae_core.metrics.encode import as_codes
    from dvae_core.metrics.mig import _as_factors

    try:
        codes = as_codes(codes)
    except (ValueError, TypeError) as error:
        raise ScoreInputError(f"{codes_path}: {error}") from None
    try:
        factors = _as_factors(factors)
    except (ValueError, TypeError) as error:
        raise ScoreInputError(f"{factors_path}: {error}") from None
    if len(codes) != len(factors):
        raise ScoreInputError(f"{codes_path} has {len(codes)} rows and {factors_path} {len(factors)}: "
                              f"they must be the same points in the same order")
    if len(codes) < 3:
        raise ScoreInputError(f"{codes_path}: {len(codes)} rows are too few to split into training and test points")
    return codes, factors


def split(n: int, num_train: int, num_test: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled row indices for the training and test points (2 : 1 of the rows if there are too few)."""
    order = rng.permutation(n)
    if n < num_train + num_test:
        num_train = max(1, (2 * n) // 3)
        num_test = n - num_train
    return order[:num_train], order[num_train:num_train + num_test]


def score_codes(codes_train, factors_train, codes_test, factors_test) -> dict:
    """MIG (on the training points, as disentanglement_lib), DCI and SAP."""
    from dvae_core.metrics.dci import dci
    from dvae_core.metrics.mig import mig
    from dvae_core.metrics.sap import sap

    d = dci(codes_train, factors_train, codes_test, factors_test)
    return {"mig": mig(codes_train, factors_train)["score"],
            "dci_disentanglement": d["disentanglement"], "dci_completeness": d["completeness"],
            "dci_informativeness": d["informativeness_test"],
            "sap": sap(codes_train, factors_train, codes_test, factors_test)["score"]}


def score_interventions(dataset: FactorDataset, encode, rng: np.random.Generator, num_train: int,
                        num_test: int) -> dict:
    """The FactorVAE and β-VAE metrics (evaluation accuracies), which draw batches that share a factor."""
    from dvae_core.metrics.beta_vae_score import beta_vae_score
    from dvae_core.metrics.factor_vae_score import factor_vae_score

    return {"factor_vae": factor_vae_score(dataset, encode, rng, num_train=num_train, num_eval=num_test,
                                           num_variance_estimate=num_train)["eval_accuracy"],
            "beta_vae": beta_vae_score(dataset, encode, rng, num_train=num_train, num_eval=num_test)["eval_accuracy"]}


def score_estimators(scores: dict, means: np.ndarray, stds: np.ndarray | None, factors: np.ndarray,
                     seed: int) -> dict:
    """MIG of the same points by both estimators: the histogram one is :func:`score_codes`' ``mig`` (on these
    training points), the sampled one is computed only where the posterior stds are known."""
    from dvae_core.metrics.mig_sampled import mig_sampled

    out = {"mig_histogram": scores["mig"]}
    if stds is not None:
        out["mig_sampled"] = mig_sampled(means, stds, factors, rng=np.random.default_rng(seed))["score"]
    return out


def score_files(codes_path: Path, factors_path: Path, num_train: int, num_test: int, seed: int) -> tuple[dict, str | None]:
    codes, factors = check_inputs(load_array(codes_path, "codes"), load_array(factors_path, "factors"),
                                  codes_path, factors_path)
    stds = load_optional(codes_path, "stds")
    if stds is not None:
        try:
            stds = as_stds(stds, codes)
        except ValueError as err:
            raise ScoreInputError(f"{codes_path}: {err}") from None
    rng = np.random.default_rng(seed)
    train, test = split(len(codes), num_train, num_test, rng)
    scores = score_codes(codes[train], factors[train], codes[test], factors[test])
    scores.update(score_estimators(scores, codes[train], None if stds is None else stds[train], factors[train], seed))
    if CodeTable.covers_grid(factors):
        table = CodeTable(codes, factors)
        scores.update(score_interventions(table, table.encode, rng, num_train, num_test))
        return scores, None
    return scores, ("FactorVAE and β-VAE metrics left out: they need batches that share one factor's value, "
                    "and the factors do not cover a full grid (every combination of their classes once)")


def score_run(run_dir: Path, num_train: int, num_test: int, seed: int, device: str) -> tuple[dict, str]:
    from dvae_core.cli import ConfigError, config_from_dict
    from dvae_core.evaluate import mean_encoder
    from dvae_core.metrics.encode import encode_factors, sample_codes
    from dvae_core.runs import load_run
    from dvae_core.train import build_dataset

    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise ScoreInputError(f"{run_dir}: no config.json, so not a run folder (give runs/<hash>)")
    try:
        config = config_from_dict(json.loads(config_path.read_text()), str(config_path))
    except (ConfigError, json.JSONDecodeError) as error:
        raise ScoreInputError(f"{config_path}: {error}") from None
    run = load_run(config, store=run_dir.parent, device=device)
    if run is None:
        raise ScoreInputError(f"{run_dir}: the run has not finished training: finish it with "
                              f"python -m dvae_core.cli {config_path}")
    if not hasattr(run["model"], "encode"):
        raise ScoreInputError(f"{run_dir}: a {type(run['model']).__name__} has no encoder to score")
    dataset = build_dataset(config)
    encode = mean_encoder(run["model"])
    rng = np.random.default_rng(seed)
    codes_train, factors_train = sample_codes(dataset, encode, num_train, rng)
    codes_test, factors_test = sample_codes(dataset, encode, num_test, rng)
    scores = score_codes(codes_train, factors_train, codes_test, factors_test)
    stds = encode_factors(dataset, posterior_std_encoder(run["model"]), factors_train)
    scores.update(score_estimators(scores, codes_train, stds, factors_train, seed))
    scores.update(score_interventions(dataset, encode, rng, num_train, num_test))
    return scores, config.dataset


def posterior_std_encoder(model, batch_size: int = 512):
    """images → the posterior standard deviations exp(logvar / 2), float64 (n, d)."""
    device = next(model.parameters()).device

    def encode(images: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            parts = [(0.5 * model.encode(images[i:i + batch_size].to(device))[1]).exp().cpu()
                     for i in range(0, len(images), batch_size)]
        return torch.cat(parts).double().numpy()

    return encode


ESTIMATOR_NOTE = ("Why they differ: the histogram bins the posterior means and ignores their spread; Chen et al. "
                  "estimate I(z_j; v_k) from the sampled posterior q(z | x), so a dimension whose means separate a "
                  "factor's values but whose posterior noise swamps them carries little information. Published "
                  "MIGs use either estimator (and other bin counts and sample sizes): compare a number only with "
                  "one computed the same way. The book reports the histogram estimator throughout.")


def estimator_panel(scores: dict) -> list[str]:
    if "mig_histogram" not in scores:
        return []
    lines = ["MIG of the same points, two estimators of its mutual information (Chen et al. 2018's definition):",
             f"  20-bin histogram of the posterior means (disentanglement_lib; the book's)  {scores['mig_histogram']:.3f}"]
    if "mig_sampled" in scores:
        lines.append(f"  sampled posterior q(z | x) (Chen et al.'s own estimator)                    "
                     f"{scores['mig_sampled']:.3f}")
    else:
        lines.append("  sampled posterior q(z | x): left out (codes.npz holds no 'stds' array of posterior "
                     "standard deviations)")
    return lines + ["  " + ESTIMATOR_NOTE]


def book_placement(dataset: str, scores: dict, results_dir: Path = RESULTS_DIR / "preview") -> list[str]:
    """Lines placing MIG and the FactorVAE metric among the book's committed preview runs on ``dataset``."""
    values: dict[str, list[float]] = {"mig": [], "factor_vae": []}
    sources = []
    for notebook, key in BOOK_RUNS.get(dataset, []):
        path = results_dir / f"{notebook}.json"
        if not path.exists():
            continue
        rows = json.loads(path.read_text()).get(key) or []
        sources.append(f"{notebook}.json[{key}]")
        for row in rows:
            for metric, field in (("mig", "mig"), ("factor_vae", "factor_score")):
                if isinstance(row.get(field), (int, float)) and math.isfinite(row[field]):
                    values[metric].append(float(row[field]))
    lines = []
    for metric, book in values.items():
        if book and metric in scores:
            below = np.mean(np.asarray(book) < scores[metric])
            lines.append(f"{LABELS[metric]}: the book's {len(book)} preview runs on {dataset} have median "
                         f"{np.median(book):.3f} (range {min(book):.3f}–{max(book):.3f}); yours is above "
                         f"{below:.0%} of them")
    if not lines:
        known = ", ".join(sorted(BOOK_RUNS))
        lines.append(f"no book runs to compare with on {dataset!r} (the book's datasets: {known})")
    elif sources:
        lines.append(f"(from results/preview/: {', '.join(sources)})")
    return lines


LABELS = {"mig": "MIG", "dci_disentanglement": "DCI disentanglement", "dci_completeness": "DCI completeness",
          "dci_informativeness": "DCI informativeness (test accuracy)", "sap": "SAP",
          "factor_vae": "FactorVAE metric (eval accuracy)", "beta_vae": "β-VAE metric (eval accuracy)"}


def report(scores: dict, note: str | None, dataset: str | None) -> str:
    width = max(len(label) for label in LABELS.values())
    lines = [f"{LABELS[k]:<{width}}  {scores[k]:.3f}" for k in LABELS if k in scores]
    lines += estimator_panel(scores)
    if note:
        lines.append(note)
    if dataset:
        lines += book_placement(dataset, scores)
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dvae_core.score",
                                description="MIG, DCI, SAP, FactorVAE and β-VAE metrics of your codes or of a run.")
    p.add_argument("--codes", type=Path, help="codes.npz: an (n, d) array of codes")
    p.add_argument("--factors", type=Path, help="factors.npz: the (n, K) integer factor classes of the same points")
    p.add_argument("--run", type=Path, help="a run folder of the run store (runs/<hash>), instead of the files")
    p.add_argument("--dataset", help="the codes' dataset, to place them against the book's runs "
                                     f"({', '.join(sorted(BOOK_RUNS))}); a run names its own")
    p.add_argument("--num-train", type=int, default=10000, help="training points (votes) per metric (default 10000)")
    p.add_argument("--num-test", type=int, default=5000, help="test points (votes) per metric (default 5000)")
    p.add_argument("--seed", type=int, default=0, help="seeds the split and the metrics' draws (default 0)")
    p.add_argument("--device", default="auto", help="where a run encodes: auto, cpu or cuda[:N]")
    p.add_argument("--json", action="store_true", help="print the scores as one JSON object instead")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.num_train < 1 or args.num_test < 1:
            raise ScoreInputError("--num-train and --num-test must be at least 1")
        if args.run is not None:
            if args.codes or args.factors:
                raise ScoreInputError("give either --run or --codes with --factors, not both")
            scores, dataset = score_run(args.run, args.num_train, args.num_test, args.seed, args.device)
            note = None
        elif args.codes is not None and args.factors is not None:
            scores, note = score_files(args.codes, args.factors, args.num_train, args.num_test, args.seed)
            dataset = args.dataset
        else:
            raise ScoreInputError("give --codes codes.npz with --factors factors.npz, or --run runs/<hash>")
    except ScoreInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({**scores, "dataset": dataset, "note": note}, sort_keys=True))
    else:
        print(report(scores, note, dataset))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
