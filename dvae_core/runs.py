"""The run store: trained models keyed by the hash of their full configuration.

``runs/<hash>/`` holds ``config.json`` (human-readable recipe) and ``checkpoint.pt``. A run whose
checkpoint reached ``config.steps`` is complete and is loaded instead of retrained; a partial one
resumes. Re-running a notebook, or a second notebook that needs the same run, costs nothing.
A new run that is a longer version of a finished one (:func:`is_prefix`) starts from that run's
checkpoint instead of step 0, so a budget curve costs only its largest budget; ``extended.json``
records which run it continued. The store lives in ``$DVAE_RUNS`` or ``<repo>/runs``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from dvae_core.infra import (atomic_torch_save, atomic_write_text, canonical_json, default_store, load_torch_file,
                             resolve_device)
from dvae_core.train import (CHECKPOINT, TrainConfig, build_dataset, build_model, check_model_fits_data,
                             data_image_shape, load_checkpoint, load_weights, snapshot_path, train)


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
    if canonical_json(state["config"]) != config.canonical():  # a copied or foreign checkpoint: never serve it
        raise RuntimeError(f"{path} holds a run of another configuration than the one asked for (its stored "
                           f"recipe differs): delete {path.parent} to retrain")
    if state["step"] < config.steps:
        return None
    model = build_model(config)
    load_weights(model, state["model"], path, f"delete {path.parent} to retrain (was the file copied over from "
                                              f"another run?)")
    model.to(resolve_device(device)).eval()
    return {"model": model, "history": json.loads(state["history"]), "config": config,
            "continued_from": continued_from(path.parent)}


def continued_from(directory: Path) -> int | None:
    """The step at which the run in ``directory`` took over a shorter run's training state, None if it
    trained from step 0."""
    path = Path(directory) / EXTENDED
    return int(json.loads(path.read_text())["step"]) if path.exists() else None


def load_snapshots(config: TrainConfig, store: Path | None = None, device: str = "auto") -> list[tuple[int, Any]]:
    """The weights a ``snapshot_every`` run kept during training, as ``(step, model in eval mode)`` pairs in
    step order; ``[]`` for a run without snapshots. Train the run first (``get_or_train``)."""
    if not config.snapshot_every:
        return []
    directory, dev = run_dir(config, store), resolve_device(device)
    # snapshots are written only while the run trains, and a finished run is reused, not retrained: a lost or
    # damaged one comes back only with the whole run, and the others alone would plot a trajectory with a gap
    retrain = f"delete {directory} to train the run again with all its snapshots"
    snapshots = []
    for step in range(config.snapshot_every, config.steps + 1, config.snapshot_every):
        path = snapshot_path(directory, step)
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: run get_or_train for this config first (or, if the run "
                                    f"has finished, {retrain})")
        weights = load_torch_file(path, retrain, what="snapshot")
        model = build_model(config)
        load_weights(model, weights, path, retrain)
        snapshots.append((step, model.to(dev).eval()))
    return snapshots


EXTENDED = "extended.json"


def is_prefix(shorter: TrainConfig, longer: TrainConfig) -> bool:
    """Whether ``shorter``, trained to the end, is ``longer`` stopped at step ``shorter.steps``: the same recipe
    but for fewer steps, a step count at which ``longer`` writes a log row (so the histories agree row for
    row), and no snapshots (which a continued run would lack). The loop uses ``steps`` only to stop (there
    is no schedule over the run's length), so continuing ``shorter``'s checkpoint is resuming ``longer``
    after a kill at that step: bit-identical to training it from step 0."""
    if not 0 < shorter.steps < longer.steps or longer.snapshot_every or shorter.steps % longer.log_every:
        return False
    return replace(shorter, steps=longer.steps).canonical() == longer.canonical()


def longest_prefix(config: TrainConfig, store: Path | None = None) -> tuple[Path, int] | None:
    """The run in the store that is the longest prefix of ``config`` (:func:`is_prefix`) and has a
    checkpoint, as (that checkpoint, the prefix's steps); None if there is none."""
    store = Path(store) if store is not None else default_store()
    best = None
    for recipe in store.glob("*/config.json"):
        try:
            candidate = TrainConfig.from_dict(json.loads(recipe.read_text()))
        except (ValueError, TypeError, KeyError, OSError):
            continue  # an unreadable recipe is not a prefix; migrate_store names it
        checkpoint = recipe.parent / CHECKPOINT
        if (is_prefix(candidate, config) and checkpoint.exists() and (best is None or candidate.steps > best[1])
                and recipe.parent.name == config_hash(candidate)):
            best = (checkpoint, candidate.steps)
    return best


def _continue_prefix(config: TrainConfig, directory: Path, store: Path | None) -> None:
    """If the longest prefix (:func:`longest_prefix`) has finished, copy its training state into ``directory``
    as ``config``'s checkpoint (relabelled with ``config``'s recipe), so that :func:`~dvae_core.train.train`
    resumes it, and record it in ``extended.json`` (:func:`continued_from`)."""
    found = longest_prefix(config, store)
    if found is None:
        return
    checkpoint, steps = found
    state = load_checkpoint(checkpoint)
    if state["step"] != steps:
        return  # the prefix is still training (or was killed): start from step 0
    state["config"] = config.to_dict()
    atomic_write_text(directory / EXTENDED, json.dumps({"from": checkpoint.parent.name, "step": state["step"]}))
    atomic_torch_save(state, directory / CHECKPOINT)


def prepare_run(config: TrainConfig, directory: Path, store: Path | None) -> None:
    """Before a run trains in ``directory`` (under its lock): its recipe written, and a finished shorter run's
    state copied in to continue (:func:`_continue_prefix`) if the run has no checkpoint of its own."""
    atomic_write_text(directory / "config.json", json.dumps(config.to_dict(), indent=1, default=list))
    if not (directory / CHECKPOINT).exists():
        _continue_prefix(config, directory, store)


@contextlib.contextmanager
def nothing_half_written(directories: list[Path]):
    """Runs that fail before their first checkpoint leave no recipe behind (no half run in the store)."""
    try:
        yield
    except BaseException:
        for directory in directories:
            if not (directory / CHECKPOINT).exists():
                (directory / "config.json").unlink(missing_ok=True)
        raise


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
    # the data before the run's folder: a missing data file, or a model that cannot read the images, leaves
    # nothing in the store (and train gets the dataset, so it is built once)
    dataset = build_dataset(config)
    check_model_fits_data(config, data_image_shape(dataset))
    with run_lock(directory):
        done = load_run(config, store, device)  # another process may have finished it while we waited
        if done is not None:
            done["reused"] = True
            return done
        prepare_run(config, directory, store)
        with nothing_half_written([directory]):
            result = train(config, directory, device=device, progress=progress, dataset=dataset)
    result["reused"] = False
    result["continued_from"] = continued_from(directory)
    return result


def migrate_store(store: Path | None = None) -> list[tuple[str, str]]:
    """Move every run whose folder no longer carries its recipe's hash to the folder that does, and return
    the ``(old, new)`` folder names. Today that is the FactorVAE runs recorded before it became a model kind
    (:func:`dvae_core.train.upgrade_recipe`): their training, weights and history are unchanged, only the
    recipe's layout, and so its hash. Each run's ``config.json`` and the recipe inside its checkpoint are
    rewritten (atomically) before the folder is renamed, so an interrupted migration resumes when run again.
    A run whose new folder exists already is left where it is and reported as an error."""
    store = Path(store) if store is not None else default_store()
    moved = []
    for recipe_path in sorted(store.glob("*/config.json")):
        directory = recipe_path.parent
        try:
            config = TrainConfig.from_dict(json.loads(recipe_path.read_text()))
        except (ValueError, TypeError, KeyError) as err:
            raise ValueError(f"{recipe_path} is not a readable run recipe ({err}): fix or delete {directory}") from None
        target = run_dir(config, store)
        if target == directory:
            continue
        if target.exists():
            raise RuntimeError(f"cannot move {directory} to {target}: that run exists already; keep one of the two "
                               f"and delete the other")
        with run_lock(directory):
            checkpoint = directory / CHECKPOINT
            if checkpoint.exists():
                state = load_checkpoint(checkpoint)
                state["config"] = config.to_dict()
                atomic_torch_save(state, checkpoint)
            atomic_write_text(recipe_path, json.dumps(config.to_dict(), indent=1, default=list))
        directory.rename(target)
        moved.append((directory.name, target.name))
    return moved
