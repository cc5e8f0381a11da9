"""The SLURM launcher writes a job script of one single-threaded Dask worker on one GPU; nothing is submitted."""

from __future__ import annotations

import sys

import pytest

from dvae_core import slurm
from dvae_core.infra import REPO_ROOT


def args(*argv: str):
    return slurm.parser().parse_args(list(argv))


def test_the_job_script_asks_for_one_gpu_and_runs_one_single_threaded_worker_on_the_shared_store(tmp_path):
    store = tmp_path / "shared" / "runs"
    script = slurm.job_script(args("--partition", "gpu", "--account", "lab", "--walltime", "1-12:00:00",
                                   "--cpus", "8", "--memory", "64GB", "--store", str(store)))
    lines = script.splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    for directive in ("-p gpu", "-A lab", "-t 1-12:00:00", "--cpus-per-task=8", "--gres=gpu:1", "-J dvae-worker"):
        assert f"#SBATCH {directive}" in lines, directive
    assert f"#SBATCH -e {tmp_path / 'shared' / 'slurm-logs'}/dvae-worker-%J.err" in lines
    assert f"cd {REPO_ROOT}" in lines and f"export DVAE_RUNS={store}" in lines and "export OMP_NUM_THREADS=8" in lines
    worker = next(line for line in lines if "dask_worker" in line)
    assert worker.startswith(f"{sys.executable} -m distributed.cli.dask_worker tcp://")
    assert "--nthreads 1" in worker and "--nworkers" not in worker  # one run at a time, on the job's GPU
    # the set-up lines come before the worker starts
    assert lines.index(f"export DVAE_RUNS={store}") < lines.index(worker)


def test_print_job_script_prints_it_and_submits_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(slurm, "run", lambda *a: pytest.fail("submitted"))
    assert slurm.main(["--print-job-script", "--store", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    assert "#SBATCH --gres=gpu:1" in out and "--partition" not in out and "#SBATCH -p" not in out


@pytest.mark.parametrize("argv, message", [
    (["--walltime", "8h"], "error: --walltime '8h' is not SLURM's [D-]HH:MM[:SS]"),
    (["--memory", "lots"], "error: --memory 'lots' is not a size"),
    (["--jobs", "0"], "error: --jobs is 0: give at least 1"),
    ([], "error: no reproduce arguments: add them after --"),
])
def test_bad_arguments_get_one_error_line_and_exit_2(argv, message, capsys):
    assert slurm.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1


def test_without_sbatch_it_says_where_to_run_it(monkeypatch, capsys):
    monkeypatch.setattr(slurm.shutil, "which", lambda name: None)
    assert slurm.main(["--", "--profile", "smoke"]) == 2
    assert "error: sbatch is not on PATH" in capsys.readouterr().err
