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

from dvae_core.train import CHECKPOINT, TrainConfig, atomic_write_text, build_model, load_checkpoint, resolve_device, train

REPO_ROOT = Path(__file__).resolve().parent.parent


def default_store() -> Path:
    return Path(os.environ.get("DVAE_RUNS", REPO_ROOT / "runs"))


def config_hash(config: TrainConfig) -> str:
    canonical = json.dumps(config.to_dict(), sort_keys=True, default=list)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


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
        atomic_write_text(directory / "config.json", json.dumps(config.to_dict(), indent=1, default=list))
        result = train(config, directory, device=device, progress=progress)
    result["reused"] = False
    return result


def get_or_train_all(configs: Iterable[TrainConfig], store: Path | None = None, device: str = "auto",
                     progress: bool | None = None) -> list[dict[str, Any]]:
    configs = list(configs)
    return [get_or_train(c, store, device, progress) for c in configs]
