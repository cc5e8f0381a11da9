"""Train many independent runs at once: local processes, or any ``concurrent.futures`` executor.

A chapter's figure needs a grid of runs (β × seeds × decoders); each is an ordinary
:class:`~dvae_core.train.TrainConfig` trained through :func:`dvae_core.runs.get_or_train`, so the run
store decides what is already done. :func:`run_sweep` only fans the missing ones out::

    from dvae_core.sweep import run_sweep
    results = run_sweep(configs, jobs=2)          # 2 local processes (spawn), 1 torch thread each
    results[0]["model"], results[0]["history"]    # same dicts as get_or_train, in input order

``get_or_train_all(configs, ...)`` is the same call with the notebooks' argument order (configs, store,
device, progress), the name the chapters use.

How it runs:

- ``jobs=1`` and no executor: a plain loop in this process (no pool, no pickling).
- ``jobs=N``: a ``ProcessPoolExecutor(N)`` with the spawn context; each worker sets
  ``torch.set_num_threads(max(1, cores // N))`` so N runs share the cores instead of fighting
  over them. Scripts that use it need the usual ``if __name__ == "__main__":`` guard (spawn
  re-imports the main module); notebooks and pytest do not.
- ``executor=...``: any ``concurrent.futures.Executor``, e.g. a Dask cluster's.

With workers, the missing runs are submitted longest first (by :func:`estimated_flops`), so the
sweep does not end with one long run training while the other workers idle; results still come
back in input order, and the order of training changes no run.

Workers train and write checkpoints into the run store; the parent loads each finished model with
:func:`dvae_core.runs.load_run`, so models never travel through pickles and a finished run is
never lost: if the parent dies, or one run fails, re-running the sweep reuses every run that
finished and resumes the rest from their last checkpoints. Configurations already complete in the
store are loaded without being submitted, and duplicate configurations in one sweep are submitted
once (the store's per-run file lock also serialises two sweeps that ask for the same run). A run
that fails does not stop the others: when all are done, :class:`SweepError` names every failed run
by its hash (``runs/<hash>/``) and carries the first failure's message and traceback.

Evaluating where the run trains
-------------------------------
Scoring a trained run (metrics on fresh draws, FIDs of decoded samples) can cost a good share of
its training time, and a notebook that scores its runs one after another in its own process leaves
the other workers idle. ``run_sweep(configs, evaluate=fn)`` calls ``fn(run)`` on the worker, right
after the run trains (or, for a run the store already has, after loading it), so scoring overlaps
the other runs' training; each result then carries ``result["evaluation"]``. ``fn`` must be
picklable (a module-level function, or a ``functools.partial`` of one over picklable arguments)
and should seed its own randomness from the run's config, so the evaluation does not depend on
where it ran. ``run["store"]`` tells it where the run store is (e.g. to load snapshots).

Where a run trains does not change it: a worker's model is bit-identical to one trained in this
process with the same torch thread count (the data stream and initialisation depend only on the
seed). From a shell, ``python -m dvae_core.cli GRID.json --jobs N`` (or ``--scheduler ADDRESS``)
runs a JSON list of configs the same way.

Runs that train together
------------------------
``ensemble=K`` (or ``$DVAE_ENSEMBLE=K``) trains up to ``K`` VAE runs that differ only in seed and β as one
vectorised model (:mod:`dvae_core.ensemble`): one task, one process, ``K`` runs in the store, each resumable
alone; their evaluations then go back to the pool one run per task. A member is its run trained alone within
float tolerance, not bit for bit. It pays where one small run leaves a device idle (a GPU); on 2 CPU cores
processes are faster (``python -m dvae_core.bench --multi-run`` measures both, on the cost page).

Running on a Dask cluster
-------------------------
The run store is the only thing workers and the parent share, so it must be one directory on a
filesystem that every worker mounts **at the same path** (NFS, a cluster filesystem), and that
supports ``flock`` (NFSv4 does; Lustre needs the ``flock`` mount option). Every worker needs this
repository's environment (``pip install -r requirements.txt`` and ``pip install -e .``), and the
workers should be started with one thread each, since every task is a whole training run::

    # on the cluster: a scheduler, and workers that see the shared store
    dask scheduler                                   # listens on tcp://scheduler:8786
    dask worker tcp://scheduler:8786 --nthreads 1 --nworkers 4   # on each machine

    # in the notebook or script
    import os; os.environ["DVAE_RUNS"] = "/shared/dvae/runs"     # or pass store=
    from distributed import Client
    client = Client("tcp://scheduler:8786")
    results = run_sweep(configs, executor=client.get_executor(), device="cuda")

The same works on one machine with ``Client(LocalCluster(n_workers=2, threads_per_worker=1))``.

One GPU per worker
------------------
``device="cuda"`` means the current CUDA device of the process that trains. Local workers
(``jobs=N``) each take their own: worker *i* of the pool (in start order) calls
``torch.cuda.set_device(i mod the GPUs it sees)`` (:func:`pin_gpu`), so N ≤ GPUs workers never share one,
and more workers than GPUs share them evenly. On a Dask cluster, start one worker per GPU with its own
``CUDA_VISIBLE_DEVICES`` — dask-cuda's ``LocalCUDACluster()`` does exactly that on one machine
(``dask cuda worker tcp://scheduler:8786`` on each machine of a cluster) — and each worker's ``"cuda"`` is
then its own GPU.
On a SLURM cluster, ``python -m dvae_core.slurm`` (:mod:`dvae_core.slurm`) submits one job per GPU through
dask-jobqueue, each one single-threaded worker with ``--gres=gpu:1``, and runs the notebooks against them.
Without touching code, ``DVAE_SCHEDULER=tcp://scheduler:8786`` makes every sweep (and so every
``get_or_train_all`` in the notebooks, e.g. under ``python -m dvae_core.reproduce --profile paper``)
run on that cluster, and ``DVAE_JOBS=N`` makes them use N local processes. The store path is
resolved in the parent and handed to the workers, so their own ``DVAE_RUNS`` does not matter.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode
from tqdm.auto import tqdm

from dvae_core import runs
from dvae_core.ensemble import ensemble_groups, get_or_train_ensemble
from dvae_core.infra import default_store, die_with_parent, keep_freed_memory, show_progress
from dvae_core.train import TrainConfig, build_dataset, build_model, model_kind, run_label

JOBS_ENV = "DVAE_JOBS"
ENSEMBLE_ENV = "DVAE_ENSEMBLE"
SCHEDULER_ENV = "DVAE_SCHEDULER"


class SweepError(RuntimeError):
    """One or more runs of a sweep failed; the message names each by its run-store hash."""

    def __init__(self, message: str, failures: dict[str, BaseException]):
        super().__init__(message)
        self.failures = failures  # hash -> the exception the run raised


def describe(config: TrainConfig) -> str:
    """A short human label for a run: dataset, decoder, objective, seed."""
    objective = f"gamma={config.model.gamma}" if model_kind(config) == "factor_vae" else f"beta={config.beta}"
    return f"{config.dataset} {run_label(config)} {objective} seed={config.seed} steps={config.steps}"


def estimated_flops(config: TrainConfig, _inputs: dict | None = None) -> float:
    """The floating-point operations of a whole run, counted on one training step of a 2-image batch
    (forward, backward and the auxiliary network's step) and scaled to ``steps × batch_size``.

    Only an ordering key for :func:`run_sweep`: it ignores data generation and the CPU efficiency of
    each layer type (measured rates differ by ~2× between models), so never read it as a time.
    ``_inputs`` caches one input batch per dataset across calls (loading a dataset can take a second).
    """
    key = (config.dataset, repr(sorted(config.dataset_kwargs.items())))
    inputs = {} if _inputs is None else _inputs
    if key not in inputs:
        inputs[key] = build_dataset(config).sample(2, np.random.default_rng(0))[0]
    x = inputs[key]
    with torch.random.fork_rng(devices=[]):  # building a model draws weights: leave the caller's RNG alone
        torch.manual_seed(0)
        model = build_model(config)
        auxiliary = model.auxiliary_optimizer()
        with FlopCounterMode(display=False) as counter:
            model.loss(x, beta=config.beta)["loss"].backward()
            if auxiliary is not None:
                model.auxiliary_step(x, auxiliary)
    return counter.get_total_flops() / len(x) * config.batch_size * config.steps


def longest_first(configs: dict[str, TrainConfig]) -> list[str]:
    """The run hashes in decreasing :func:`estimated_flops`: Graham's longest-processing-time-first order.

    Submitted in input order, a sweep of three SB runs (each ~4× a DeConv run) after three DeConv runs
    on two workers ends with one SB run training alone; started first, the long runs pair up and the
    short ones fill the gaps, so the last worker finishes sooner (within 4/3 of the best schedule).
    """
    if len(configs) < 3:
        return list(configs)
    inputs: dict = {}
    try:
        cost = {h: estimated_flops(c, inputs) for h, c in configs.items()}
    except Exception:  # e.g. a missing data file: keep the order, and let the worker report it with its run
        return list(configs)
    return sorted(configs, key=lambda h: -cost[h])  # stable: equal costs keep the input order


def default_jobs() -> int:
    value = os.environ.get(JOBS_ENV, "1")
    try:
        jobs = int(value)
    except ValueError:
        raise ValueError(f"{JOBS_ENV}={value!r} is not a whole number: set it to the number of parallel runs") from None
    return jobs


def default_ensemble() -> int:
    value = os.environ.get(ENSEMBLE_ENV, "1")
    try:
        size = int(value)
    except ValueError:
        size = 0
    if size < 1:
        raise ValueError(f"{ENSEMBLE_ENV}={value!r}: set it to the most runs that train together as one ensemble "
                         f"(1: every run alone)")
    return size


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


#: This process's place among its pool's workers (None outside a local pool): which GPU it takes.
WORKER_SLOT: int | None = None


def pin_gpu(slot: int) -> int | None:
    """Make GPU ``slot`` mod the visible GPUs this process's current CUDA device (what ``"cuda"`` names);
    returns its index, or None where torch sees no GPU."""
    if not torch.cuda.is_available():
        return None
    index = slot % torch.cuda.device_count()
    torch.cuda.set_device(index)
    return index


def _init_local_worker(threads: int, parent: int, slots=None) -> None:
    """A local process of the pool: its threads, its GPU (one per worker, :func:`pin_gpu`), and death with
    the parent that started it. ``slots``: a shared counter that gives each worker its own slot."""
    global WORKER_SLOT
    die_with_parent(parent)
    _init_worker(threads)
    if slots is not None:
        with slots.get_lock():
            WORKER_SLOT = slots.value
            slots.value += 1
        pin_gpu(WORKER_SLOT)


def _train_one(config: TrainConfig, store: str, device: str, progress: bool | None,
               threads: int | None = None, evaluate: Callable[[dict], Any] | None = None) -> dict[str, Any]:
    """Runs on a worker: train (or reuse) one run into the shared store, and evaluate it if asked;
    returns a small summary and the evaluation, never the model (the parent loads that from the store)."""
    if threads is not None:
        _init_worker(threads)
    keep_freed_memory()  # here too, not only in train: a stored run is only evaluated
    start = time.perf_counter()
    result = runs.get_or_train(config, Path(store), device=device, progress=progress)
    trained = time.perf_counter()
    summary = {"hash": runs.config_hash(config), "reused": result["reused"], "seconds": trained - start,
               "host": os.uname().nodename, "pid": os.getpid()}
    if evaluate is not None:
        summary["evaluation"] = evaluate({**result, "store": store})
        summary["evaluate_seconds"] = time.perf_counter() - trained
    return summary


def _train_group(configs: list[TrainConfig], store: str, device: str, progress: bool | None,
                 threads: int | None = None) -> list[dict[str, Any]]:
    """Runs on a worker: train (or reuse) runs as one ensemble (:mod:`dvae_core.ensemble`) into the shared store;
    one summary per run. Their evaluations go back to the pool, one task per run (:func:`_train_one` on a stored
    run only evaluates it), so that scoring them is spread over the workers as a sweep of lone runs is."""
    if threads is not None:
        _init_worker(threads)
    keep_freed_memory()
    start = time.perf_counter()
    results = get_or_train_ensemble(configs, Path(store), device=device, progress=progress)
    seconds = time.perf_counter() - start
    return [{"hash": runs.config_hash(config), "reused": result["reused"], "seconds": seconds,
             "host": os.uname().nodename, "pid": os.getpid(), "ensemble": len(configs)}
            for config, result in zip(configs, results)]


@contextlib.contextmanager
def _executor(executor: cf.Executor | None, jobs: int) -> Iterator[cf.Executor]:
    """The caller's executor (left open), ``$DVAE_SCHEDULER``'s Dask cluster, or ``jobs`` local processes."""
    if executor is not None:
        yield executor
        return
    address = os.environ.get(SCHEDULER_ENV)
    if address:
        from distributed import Client

        with Client(address) as client:
            yield client.get_executor()
        return
    threads = max(1, _cores() // jobs)
    context = multiprocessing.get_context("spawn")
    pool = cf.ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_local_worker,
                                  initargs=(threads, os.getpid(), context.Value("i", 0)))
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)  # interrupted: do not wait for running runs
        raise
    pool.shutdown(wait=True)


def _error_message(failures: dict[str, BaseException], labels: dict[str, str], store: Path) -> str:
    (first_hash, first), *others = failures.items()
    detail = " ".join(str(first).split()) or repr(first)
    message = f"run {first_hash} ({labels[first_hash]}) failed: {type(first).__name__}: {detail}"
    if others:
        message += f"; {len(others)} more run(s) failed: {', '.join(h for h, _ in others)}"
    return message + f" (finished runs are kept in {store}: running the sweep again retries only the failed ones)"


def run_sweep(configs: Iterable[TrainConfig], executor: cf.Executor | None = None, jobs: int | None = None,
              store: Path | str | None = None, device: str = "auto", progress: bool | None = None,
              threads: int | None = None, evaluate: Callable[[dict], Any] | None = None,
              ensemble: int | None = None) -> list[dict[str, Any]]:
    """Train (or reuse) every configuration; returns one ``get_or_train`` result per config, in order.

    Args:
        configs: the runs; duplicates are trained once (each gets its own loaded copy).
        executor: any ``concurrent.futures.Executor`` (e.g. ``distributed.Client(...).get_executor()``);
            it is used as is and not shut down. Default: ``$DVAE_SCHEDULER``'s Dask cluster if set,
            else ``jobs`` local processes.
        jobs: local processes when no executor is given; ``$DVAE_JOBS`` or 1 by default. With 1 (and
            no executor, no ``$DVAE_SCHEDULER``) runs train one after another in this process.
        store: the run store (default ``$DVAE_RUNS`` or ``<repo>/runs``); must be shared with the workers.
        device: where workers train and where the parent loads the models.
        progress: per-run progress bars in the in-process loop; with workers, one bar counting
            finished runs (worker bars only if ``True``).
        threads: torch threads per task on a caller's executor (default: leave the worker's setting).
        evaluate: ``evaluate(run) -> result``, called where each run trains, after training or loading it
            (see "Evaluating where the run trains" above); its result is ``result["evaluation"]``. A run
            that appears twice is evaluated once.
        ensemble: the most runs of one architecture (VAE runs that differ only in seed and β,
            :func:`dvae_core.ensemble.ensemble_key`) that train together as one vectorised model, each still its
            own run in the store; ``$DVAE_ENSEMBLE`` or 1 (every run alone) by default. Each ensemble is one
            task: one process, or one worker of the executor.

    Each result is ``{"model", "history", "config", "reused"}`` (and ``"evaluation"`` with ``evaluate``);
    ``reused`` is False only for the first occurrence of a run this sweep trained. Raises
    :class:`SweepError` after all runs are done if any failed.
    """
    configs = list(configs)
    jobs = default_jobs() if jobs is None else jobs
    if jobs < 1:
        raise ValueError(f"jobs={jobs}: use 1 (in this process) or more (parallel processes)")
    ensemble = default_ensemble() if ensemble is None else ensemble
    if ensemble < 1:
        raise ValueError(f"ensemble={ensemble}: use 1 (every run alone) or more (runs trained together)")
    store = Path(store if store is not None else default_store()).resolve()
    hashes = [runs.config_hash(c) for c in configs]
    unique: dict[str, TrainConfig] = {}
    for h, config in zip(hashes, configs):
        unique.setdefault(h, config)
    labels = {h: describe(c) for h, c in unique.items()}
    failures: dict[str, BaseException] = {}

    if executor is None and jobs == 1 and not os.environ.get(SCHEDULER_ENV):
        if evaluate is not None:
            # as _train_one does: when every run is stored, nothing here trains (which sets it) and the
            # evaluations ran at glibc's default, measured twice as slow in fvae_tc (19.0 min vs 8.8)
            keep_freed_memory()
        finished: dict[str, dict[str, Any]] = {}
        trained_together = _train_ensembles_here(unique, ensemble, store, device, progress, failures)
        results = []
        for h, config in zip(hashes, configs):
            if h in failures:
                continue
            try:
                result = runs.get_or_train(config, store, device=device, progress=progress)
                if h in trained_together:
                    result["reused"] = False
                if evaluate is not None:
                    result["evaluation"] = (finished[h]["evaluation"] if h in finished
                                            else evaluate({**result, "store": str(store)}))
            except Exception as err:  # keep going: the other runs are independent
                failures[h] = err
                continue
            result["reused"] = result["reused"] or h in finished
            finished[h] = result
            results.append(result)
        if failures:
            raise SweepError(_error_message(failures, labels, store), failures) from next(iter(failures.values()))
        return results

    # reuse what the store already has; submit each missing run once
    loaded: dict[int, dict[str, Any]] = {}
    pending: dict[str, TrainConfig] = {}
    for i, (h, config) in enumerate(zip(hashes, configs)):
        if h in pending or h in failures:
            continue
        try:
            done = runs.load_run(config, store, device)
        except Exception as err:  # a damaged checkpoint: report it with the others
            failures[h] = err
            continue
        if done is None or evaluate is not None:  # finished runs too go out when they are to be evaluated
            pending[h] = config
        if done is not None:
            loaded[i] = {**done, "reused": True}
    trained_here: set[str] = set()
    evaluations: dict[str, Any] = {}
    if pending:
        worker_progress = progress if progress is True else False
        bar = tqdm(total=len(pending), desc="sweep runs", disable=not show_progress(progress), leave=False)
        with _executor(executor, min(jobs, len(pending))) as pool:
            order = longest_first(pending)
            groups = [[order[i] for i in group] for group in ensemble_groups([pending[h] for h in order], ensemble)]

            def submit_alone(h: str) -> None:
                futures[pool.submit(_train_one, pending[h], str(store), device, worker_progress, threads,
                                    evaluate)] = ([h], "alone")

            futures: dict[cf.Future, tuple[list[str], str]] = {}
            for group in groups:
                if len(group) == 1:
                    submit_alone(group[0])
                else:
                    futures[pool.submit(_train_group, [pending[h] for h in group], str(store), device,
                                        worker_progress, threads)] = (group, "together")
            try:
                while futures:
                    done, _ = cf.wait(futures, return_when=cf.FIRST_COMPLETED)
                    for future in done:
                        group, how = futures.pop(future)
                        try:
                            summaries = future.result()
                        except Exception as err:
                            failures.update({h: err for h in group})
                            bar.update(len(group))
                            continue
                        summaries = summaries if how == "together" else [summaries]
                        for h, summary in zip(group, summaries):
                            if not summary["reused"]:
                                trained_here.add(h)
                            if "evaluation" in summary:
                                evaluations[h] = summary["evaluation"]
                        if how == "together" and evaluate is not None:
                            for h in group:  # now stored: each evaluated on a worker of its own
                                submit_alone(h)
                        else:
                            bar.update(len(group))
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
            finally:
                bar.close()
    if failures:
        ordered = {h: failures[h] for h in hashes if h in failures}
        first = next(iter(ordered.values()))
        raise SweepError(_error_message(ordered, labels, store), ordered) from first

    results: list[dict[str, Any]] = []
    first_seen: set[str] = set()
    for i, (h, config) in enumerate(zip(hashes, configs)):
        if i in loaded and h not in trained_here:
            results.append({**loaded[i], **({"evaluation": evaluations[h]} if h in evaluations else {})})
            first_seen.add(h)
            continue
        done = runs.load_run(config, store, device)
        if done is None:
            raise SweepError(
                f"run {h} ({labels[h]}) finished on a worker but {runs.run_dir(config, store)} has no finished "
                f"checkpoint: the workers must see the run store at the same path (a shared filesystem; set "
                f"DVAE_RUNS or store=)", {h: RuntimeError("missing from the store")})
        results.append({**done, "reused": h in first_seen or h not in trained_here,
                        **({"evaluation": evaluations[h]} if h in evaluations else {})})
        first_seen.add(h)
    return results


def _train_ensembles_here(unique: dict[str, TrainConfig], size: int, store: Path, device: str,
                          progress: bool | None, failures: dict[str, BaseException]) -> set[str]:
    """In this process, train the runs that share an ensemble (:func:`ensemble_groups` of ``size``) together;
    the hashes it trained. A failed ensemble's runs go into ``failures``."""
    if size == 1:
        return set()
    hashes = list(unique)
    trained: set[str] = set()
    for group in ensemble_groups(unique.values(), size):
        if len(group) == 1:
            continue  # trains alone, in the caller's loop
        members = [hashes[i] for i in group]
        try:
            results = get_or_train_ensemble([unique[h] for h in members], store, device=device, progress=progress)
        except Exception as err:
            failures.update({h: err for h in members})
            continue
        trained.update(h for h, result in zip(members, results) if not result["reused"])
    return trained


def get_or_train_all(configs: Iterable[TrainConfig], store: Path | None = None, device: str = "auto",
                     progress: bool | None = None, *, jobs: int | None = None,
                     executor: Any = None, evaluate: Any = None, ensemble: int | None = None) -> list[dict[str, Any]]:
    """``get_or_train`` for every config, in order: :func:`run_sweep` with the arguments of
    :func:`dvae_core.runs.get_or_train` first. In this process by default, or ``jobs`` local processes,
    or any ``concurrent.futures`` executor (a Dask cluster's); ``$DVAE_JOBS`` / ``$DVAE_SCHEDULER`` set the
    default. ``evaluate(run)`` scores each run where it trained (``result["evaluation"]``)."""
    return run_sweep(configs, executor=executor, jobs=jobs, store=store, device=device, progress=progress,
                     evaluate=evaluate, ensemble=ensemble)
