"""Re-run the book on a SLURM cluster: one GPU per Dask worker, one worker per SLURM job.

``python -m dvae_core.slurm --jobs 8 --partition gpu --store /shared/dvae/runs -- --profile paper --device cuda``
starts a Dask scheduler in this process (on the login node, or in a small job of its own), submits
``--jobs`` SLURM jobs through dask-jobqueue's :class:`~dask_jobqueue.SLURMCluster`, each running one
Dask worker with one thread on one GPU (``--gres=gpu:1``: SLURM sets the job's
``CUDA_VISIBLE_DEVICES``, so every worker's ``"cuda"`` is its own GPU), and then runs
``python -m dvae_core.reproduce`` with the arguments after ``--`` and ``DVAE_SCHEDULER`` set to that
scheduler: every ``get_or_train_all`` of every notebook then trains its missing runs on the cluster's
workers (see :mod:`dvae_core.sweep`), while the notebooks themselves run here. When reproduce ends the
jobs are cancelled.

``--print-job-script`` prints the batch script one worker job would run and submits nothing, so a
reader can check it against the cluster's rules first (``tests/test_slurm.py`` checks it).

What the cluster needs (as for any Dask cluster, :mod:`dvae_core.sweep`): this repository and its
environment at the same path on every node (``sys.executable`` is the workers' Python), and the run
store on a shared filesystem that supports ``flock``, at the same path everywhere. A job killed by its
wall time loses nothing: a new job replaces it, and the run store resumes its runs from their last
checkpoints when the scheduler hands them to another worker, or when the command is run again.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from pathlib import Path

from dvae_core.infra import REPO_ROOT, RUNS_ENV
from dvae_core.sweep import SCHEDULER_ENV

WALLTIME = re.compile(r"^(\d+-)?\d{1,3}:\d{2}(:\d{2})?$")  # SLURM's [D-]HH:MM[:SS]
MEMORY = re.compile(r"^\d+(\.\d+)?\s*[KMGT]i?B$", re.IGNORECASE)


class SlurmArgumentError(ValueError):
    """An argument the job script cannot be written with."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m dvae_core.slurm",
        description="Run `python -m dvae_core.reproduce` with its training runs on SLURM GPU jobs "
                    "(arguments after -- go to reproduce).")
    p.add_argument("--jobs", type=int, default=4, help="SLURM jobs, each one worker on one GPU (default 4)")
    p.add_argument("--partition", default=None, help="SLURM partition (-p); default: the cluster's")
    p.add_argument("--account", default=None, help="SLURM account (-A), where the cluster asks for one")
    p.add_argument("--walltime", default="08:00:00", help="each job's time limit, [D-]HH:MM[:SS] (default 08:00:00)")
    p.add_argument("--cpus", type=int, default=4, help="CPU cores per job (data, scoring; default 4)")
    p.add_argument("--memory", default="32GB", help="memory per job, e.g. 32GB (default)")
    p.add_argument("--gres", default="gpu:1", help="generic resources per job (default gpu:1: one GPU per worker)")
    p.add_argument("--store", type=Path, default=None,
                   help="the run store on a filesystem every node mounts (default $DVAE_RUNS or <repo>/runs)")
    p.add_argument("--interface", default=None,
                   help="network interface the workers reach the scheduler on (e.g. ib0); default: dask's")
    p.add_argument("--log-directory", type=Path, default=None,
                   help="where the jobs' stdout/stderr go (default <store>/../slurm-logs)")
    p.add_argument("--print-job-script", action="store_true", help="print one worker job's script; submit nothing")
    p.add_argument("reproduce_args", nargs=argparse.REMAINDER,
                   help="-- then the arguments of python -m dvae_core.reproduce, e.g. -- --profile paper --device cuda")
    return p


def check(args: argparse.Namespace) -> None:
    """Refuse arguments SLURM or the workers would reject later, naming the argument and the fix."""
    if args.jobs < 1:
        raise SlurmArgumentError(f"--jobs is {args.jobs}: give at least 1")
    if args.cpus < 1:
        raise SlurmArgumentError(f"--cpus is {args.cpus}: give at least 1")
    if not WALLTIME.match(args.walltime):
        raise SlurmArgumentError(f"--walltime {args.walltime!r} is not SLURM's [D-]HH:MM[:SS], e.g. 08:00:00")
    if not MEMORY.match(args.memory):
        raise SlurmArgumentError(f"--memory {args.memory!r} is not a size such as 32GB or 64GiB")


def store_of(args: argparse.Namespace) -> Path:
    return (args.store or Path(os.environ.get(RUNS_ENV) or REPO_ROOT / "runs")).resolve()


def cluster_kwargs(args: argparse.Namespace) -> dict:
    """The :class:`~dask_jobqueue.SLURMCluster` arguments of one worker job per GPU."""
    store = store_of(args)
    logs = (args.log_directory or store.parent / "slurm-logs").resolve()
    return dict(
        # one Dask worker process with one thread: every task is a whole training run on the job's GPU
        cores=1, processes=1, job_cpu=args.cpus, memory=args.memory, walltime=args.walltime,
        queue=args.partition, account=args.account, job_name="dvae-worker",
        job_extra_directives=[f"--gres={args.gres}"] if args.gres else [],
        job_script_prologue=[f"cd {REPO_ROOT}", f"export {RUNS_ENV}={store}",
                             # the job's CPU cores for the data and scoring work of its runs
                             f"export OMP_NUM_THREADS={args.cpus}"],
        python=sys.executable, log_directory=str(logs), interface=args.interface,
        scheduler_options={"dashboard_address": None}, worker_extra_args=["--no-dashboard"])


def job_script(args: argparse.Namespace) -> str:
    """The batch script of one worker job (starts a scheduler here to name its address; submits nothing)."""
    from dask_jobqueue import SLURMCluster

    with SLURMCluster(**cluster_kwargs(args)) as cluster:
        return cluster.job_script()


def run(args: argparse.Namespace) -> int:
    from dask_jobqueue import SLURMCluster

    from dvae_core import reproduce

    if shutil.which("sbatch") is None:
        raise SlurmArgumentError("sbatch is not on PATH: run this on a SLURM login node, or use --print-job-script")
    kwargs = cluster_kwargs(args)
    Path(kwargs["log_directory"]).mkdir(parents=True, exist_ok=True)
    with SLURMCluster(**kwargs) as cluster:
        # adapt, not scale: a job that ends (its wall time, a node failure) is replaced by a new one
        cluster.adapt(minimum_jobs=args.jobs, maximum_jobs=args.jobs)
        print(f"[slurm] scheduler {cluster.scheduler_address}; {args.jobs} worker job(s) submitted; "
              f"logs in {kwargs['log_directory']}", file=sys.stderr, flush=True)
        os.environ[SCHEDULER_ENV] = cluster.scheduler_address
        os.environ[RUNS_ENV] = str(store_of(args))
        return reproduce.main(args.reproduce_args)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.reproduce_args[:1] == ["--"]:
        args.reproduce_args = args.reproduce_args[1:]
    try:
        check(args)
        if args.print_job_script:
            print(job_script(args))
            return 0
        if not args.reproduce_args:
            raise SlurmArgumentError("no reproduce arguments: add them after --, e.g. -- --profile paper --device cuda")
        return run(args)
    except SlurmArgumentError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
