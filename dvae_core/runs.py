"""The run store: trained models keyed by the hash of their full configuration.

``runs/<hash>/`` holds ``config.json`` (human-readable recipe) and ``checkpoint.pt``. A run whose
checkpoint reached ``config.steps`` is complete and is loaded instead of retrained; a partial one
resumes. Re-running a notebook, or a second notebook that needs the same run, costs nothing.
The store lives in ``$DVAE_RUNS`` or ``<repo>/runs``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable

import torch

from dvae_core.train import (CHECKPOINT, TrainConfig, atomic_write_text, build_model, load_checkpoint, resolve_device,
                             snapshot_path, train)

REPO_ROOT = Path(__file__).resolve().parent.parent


def default_store() -> Path:
    return Path(os.environ.get("DVAE_RUNS", REPO_ROOT / "runs"))


def config_hash(config: TrainConfig) -> str:
    return hashlib.sha256(config.canonical().encode()).hexdigest()[:16]


def run_dir(config: TrainConfig, store: Path | None = None) -> Path:
    return (store or default_store()) / config_hash(config)


def load_run(config: TrainConfig, store: Path | None = None, device: str = "auto") -> dict[str, Any] | None:
    """The completed run for ``config``, or None if it is missing or unfinished."""
    path = run_dir(config, store) / CHECKPOINT
    if not path.exists():
        return None
    state = load_checkpoint(path)
    if state["step"] < config.steps:
        return None
    model = build_model(config)
    model.load_state_dict(state["model"])
    model.to(resolve_device(device)).eval()
    return {"model": model, "history": json.loads(state["history"]), "config": config}


def load_snapshots(config: TrainConfig, store: Path | None = None, device: str = "auto") -> list[tuple[int, Any]]:
    """The weights a ``snapshot_every`` run kept during training, as ``(step, model in eval mode)`` pairs in
    step order; ``[]`` for a run without snapshots. Train the run first (``get_or_train``)."""
    if not config.snapshot_every:
        return []
    directory, dev = run_dir(config, store), resolve_device(device)
    snapshots = []
    for step in range(config.snapshot_every, config.steps + 1, config.snapshot_every):
        path = snapshot_path(directory, step)
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: run get_or_train for this config first (or delete "
                                    f"{directory} to retrain it)")
        model = build_model(config)
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        snapshots.append((step, model.to(dev).eval()))
    return snapshots


@contextlib.contextmanager
def run_lock(directory: Path):
    """An exclusive lock on one run: a second process asking for the same run waits, then reuses it."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def get_or_train(config: TrainConfig, store: Path | None = None, device: str = "auto",
                 progress: bool | None = None) -> dict[str, Any]:
    """Load the finished run for ``config`` or train it (resuming a partial one)."""
    done = load_run(config, store, device)
    if done is not None:
        done["reused"] = True
        return done
    directory = run_dir(config, store)
    with run_lock(directory):
        done = load_run(config, store, device)  # another process may have finished it while we waited
        if done is not None:
            done["reused"] = True
            return done
        recipe = directory / "config.json"
        atomic_write_text(recipe, json.dumps(config.to_dict(), indent=1, default=list))
        try:
            result = train(config, directory, device=device, progress=progress)
        except BaseException:
            if not (directory / CHECKPOINT).exists():  # failed before its first checkpoint: leave no half run
                recipe.unlink(missing_ok=True)
            raise
    result["reused"] = False
    return result


def get_or_train_all(configs: Iterable[TrainConfig], store: Path | None = None, device: str = "auto",
                     progress: bool | None = None, *, jobs: int | None = None,
                     executor: Any = None, evaluate: Any = None) -> list[dict[str, Any]]:
    """``get_or_train`` for every config, in order, through :func:`dvae_core.sweep.run_sweep`: in this
    process by default, or ``jobs`` local processes, or any ``concurrent.futures`` executor (a Dask
    cluster's); ``$DVAE_JOBS`` / ``$DVAE_SCHEDULER`` set the default. ``evaluate(run)`` scores each run
    where it trained (``result["evaluation"]``). See ``dvae_core.sweep``."""
    from dvae_core.sweep import run_sweep  # sweep imports this module

    return run_sweep(configs, executor=executor, jobs=jobs, store=store, device=device, progress=progress,
                     evaluate=evaluate)
