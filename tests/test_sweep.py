"""Sweeps: local processes and a Dask cluster train the same models as a plain loop; duplicates train
once; a failing run is named by its hash and does not cost the others."""

import concurrent.futures as cf
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from dvae_core import runs, sweep
from dvae_core.sweep import SweepError, run_sweep
from test_train import params, tiny_config

TIMING_KEYS = {"images_per_s", "data_fraction"}


def grid():
    """Four tiny runs, as a chapter's grid would vary them: seeds and β."""
    return [tiny_config(seed=0), tiny_config(seed=1), tiny_config(beta=4.0), tiny_config(beta=4.0, seed=1)]


def losses(history):
    return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in history]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Workers get one thread each (2 cores / 2 jobs); the reference runs here use one too."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    store = tmp_path_factory.mktemp("sequential")
    return [runs.get_or_train(c, store, device="cpu", progress=False) for c in grid()]


def assert_same_runs(expected, got):
    assert len(expected) == len(got)
    for a, b in zip(expected, got):
        assert a["config"] == b["config"]
        assert torch.equal(params(a["model"]), params(b["model"])), runs.config_hash(a["config"])
        assert losses(a["history"]) == losses(b["history"])


def test_process_pool_matches_sequential_and_trains_duplicates_once(tmp_path, sequential, monkeypatch):
    configs = grid() + [grid()[1]]  # the second run asked for twice
    swept = run_sweep(configs, jobs=2, store=tmp_path, device="cpu", progress=False)
    assert_same_runs(sequential + [sequential[1]], swept)
    assert [r["reused"] for r in swept] == [False, False, False, False, True]
    assert swept[1]["model"] is not swept[4]["model"]  # each result owns its model
    assert len(list(tmp_path.iterdir())) == 4

    # everything is in the store now: a second sweep loads it all and starts no pool
    monkeypatch.setattr(cf, "ProcessPoolExecutor", None)
    again = sweep.get_or_train_all(configs, store=tmp_path, device="cpu", progress=False, jobs=2)
    assert all(r["reused"] for r in again)
    assert_same_runs(swept, again)


def test_dask_cluster_matches_sequential_and_reports_a_failed_run(tmp_path, sequential):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  silence_logs=40) as cluster, distributed.Client(cluster) as client:
        executor = client.get_executor()
        swept = run_sweep(grid(), executor=executor, store=tmp_path, device="cpu", progress=False)
        assert_same_runs(sequential, swept)
        assert not any(r["reused"] for r in swept)

        good, bad = tiny_config(seed=7), tiny_config(seed=8, lr=1e30)  # lr 1e30: NaN at step 2
        with pytest.raises(SweepError) as info:
            run_sweep([good, bad], executor=executor, store=tmp_path, device="cpu", progress=False)
    message = str(info.value)
    assert f"run {runs.config_hash(bad)} (dsprites deconv beta=1.0 seed=8" in message
    assert "NonFiniteLossError: step 2: loss term 'loss' is nan; lower the learning rate" in message
    assert "\n" not in message and list(info.value.failures) == [runs.config_hash(bad)]
    assert runs.load_run(good, tmp_path) is not None  # the good run of the failed sweep is kept
    assert not list(runs.run_dir(bad, tmp_path).glob("*.pt*")), "a failed run left a checkpoint"


def test_duplicates_train_once_on_a_parallel_executor(tmp_path, monkeypatch):
    calls = []
    real_train = runs.train

    def counting_train(config, *args, **kwargs):
        calls.append(runs.config_hash(config))
        return real_train(config, *args, **kwargs)

    monkeypatch.setattr(runs, "train", counting_train)
    a, b = tiny_config(steps=4), tiny_config(steps=4, seed=9)
    with cf.ThreadPoolExecutor(2) as executor:
        results = run_sweep([a, a, b, a], executor=executor, store=tmp_path, device="cpu", progress=False)
    assert sorted(calls) == sorted([runs.config_hash(a), runs.config_hash(b)])
    assert [r["reused"] for r in results] == [False, True, False, True]
    assert torch.equal(params(results[0]["model"]), params(results[3]["model"]))


def test_in_process_sweep_names_the_failed_run_and_finishes_the_others(tmp_path):
    good, broken, later = tiny_config(steps=4), tiny_config(steps=4, dataset="no_such_data"), tiny_config(steps=4, seed=5)
    with pytest.raises(SweepError, match=rf"run {runs.config_hash(broken)} \(no_such_data deconv .*\) failed: "
                                         r"ValueError: unknown dataset 'no_such_data'") as info:
        sweep.get_or_train_all([good, broken, later, broken], store=tmp_path, device="cpu", progress=False)
    assert isinstance(info.value.__cause__, ValueError)
    assert runs.load_run(later, tmp_path) is not None
    assert not (runs.run_dir(broken, tmp_path) / "config.json").exists(), "a run that never started left its recipe"


def test_workers_that_do_not_share_the_store_are_a_clear_error(tmp_path):
    elsewhere = tmp_path / "worker_local_disk"

    class ElsewhereExecutor(cf.ThreadPoolExecutor):  # a "cluster" whose workers write to their own disk
        def submit(self, fn, config, store, *rest):
            return super().submit(fn, config, str(elsewhere), *rest)

    with ElsewhereExecutor(1) as executor, pytest.raises(SweepError, match="workers must see the run store"):
        run_sweep([tiny_config(steps=2)], executor=executor, store=tmp_path / "shared", device="cpu", progress=False)


def test_bad_jobs_and_empty_sweeps(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="jobs=0"):
        run_sweep([tiny_config()], jobs=0, store=tmp_path)
    monkeypatch.setenv(sweep.JOBS_ENV, "many")
    with pytest.raises(ValueError, match="DVAE_JOBS='many'"):
        run_sweep([tiny_config()], store=tmp_path)
    assert run_sweep([], jobs=2, store=tmp_path) == []


def weight_sum(run):
    """A stand-in evaluation: a number that depends on the trained weights, and where the store was."""
    return {"weights": float(params(run["model"]).double().sum()), "store": run["store"]}


def test_evaluate_runs_where_the_run_trains_and_matches_in_process(tmp_path, sequential):
    expected = [weight_sum({**run, "store": str(tmp_path)}) for run in sequential]
    configs = grid() + [grid()[0]]
    in_process = run_sweep(configs, jobs=1, store=tmp_path / "a", device="cpu", progress=False, evaluate=weight_sum)
    assert [r["evaluation"]["weights"] for r in in_process] == [e["weights"] for e in expected + expected[:1]]
    assert in_process[0]["evaluation"]["store"] == str((tmp_path / "a").resolve())

    store = tmp_path / "b"
    run_sweep(grid()[:2], jobs=1, store=store, device="cpu", progress=False)  # half the grid already stored
    swept = run_sweep(configs, jobs=2, store=store, device="cpu", progress=False, evaluate=weight_sum)
    assert [r["evaluation"]["weights"] for r in swept] == [r["evaluation"]["weights"] for r in in_process]
    assert [r["reused"] for r in swept] == [True, True, False, False, True]
    assert_same_runs(sequential + sequential[:1], swept)
    assert "evaluation" not in run_sweep(configs, jobs=2, store=store, device="cpu", progress=False)[0]


def test_in_process_evaluation_of_stored_runs_keeps_freed_memory_as_training_does(tmp_path, monkeypatch):
    import dvae_core.sweep as sweep

    run_sweep(grid()[:1], jobs=1, store=tmp_path, device="cpu", progress=False)
    calls = []
    monkeypatch.setattr(sweep, "keep_freed_memory", lambda: calls.append(1))
    run_sweep(grid()[:1], jobs=1, store=tmp_path, device="cpu", progress=False, evaluate=weight_sum)
    assert calls, "a sweep that only evaluates stored runs left glibc's allocator at its default"


def test_long_runs_are_submitted_first_and_results_keep_the_input_order(tmp_path, monkeypatch):
    short, long_ = tiny_config(steps=4), tiny_config(steps=8, seed=5)
    wide = tiny_config(steps=4, seed=6, model=replace(short.model, decoder="sb", decoder_channels=16, sb_layers=2))
    flops_short, flops_long, flops_wide = (sweep.estimated_flops(c) for c in (short, long_, wide))
    assert flops_long == pytest.approx(2 * flops_short)  # twice the steps, twice the work
    assert flops_wide > flops_long  # an SB decoder convolves at every pixel
    before = torch.get_rng_state()
    sweep.estimated_flops(wide)
    assert torch.equal(before, torch.get_rng_state())  # counting builds a model without touching the caller's RNG

    submitted = []
    real_train_one = sweep._train_one

    def recording_train_one(config, *args):
        submitted.append(config)
        return real_train_one(config, *args)

    monkeypatch.setattr(sweep, "_train_one", recording_train_one)
    with cf.ThreadPoolExecutor(1) as executor:  # one worker: it takes the runs in submission order
        results = run_sweep([short, long_, wide], executor=executor, store=tmp_path, device="cpu", progress=False)
    assert submitted == [wide, long_, short]
    assert [r["config"] for r in results] == [short, long_, wide]


def test_a_run_that_cannot_be_costed_leaves_the_order_to_the_workers(tmp_path):
    missing = tiny_config(dataset="dsprites_npz", dataset_kwargs={"path": str(tmp_path / "absent.npz")})
    configs = {str(i): c for i, c in enumerate([tiny_config(steps=4), missing, tiny_config(steps=8)])}
    assert sweep.longest_first(configs) == ["0", "1", "2"]  # the worker then names the missing file


def children_of(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:  # the field after the state is the parent pid
            found.add(int(stat.parent.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux's /proc")
def test_sweep_workers_die_with_a_killed_parent(tmp_path):
    script = (
        "import sys; sys.path.insert(0, %r)\n"
        "from test_train import tiny_config\n"
        "from dvae_core.sweep import run_sweep\n"
        "if __name__ == '__main__':\n"
        "    run_sweep([tiny_config(steps=100000, seed=s) for s in (1, 2)], jobs=2, store=%r, device='cpu',"
        " progress=False)\n") % (str(Path(__file__).parent), str(tmp_path / "store"))
    (tmp_path / "sweep.py").write_text(script)
    parent = subprocess.Popen([sys.executable, str(tmp_path / "sweep.py")], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        workers: set[int] = set()
        while time.monotonic() < deadline and len(list((tmp_path / "store").glob("*/config.json"))) < 2:
            time.sleep(0.5)
        workers = children_of(parent.pid)
        assert len(workers) >= 2, "the sweep did not start its workers"
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in workers):
        time.sleep(0.2)
    alive = [pid for pid in workers if Path(f"/proc/{pid}").exists()
             and Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"]
    assert alive == [], f"workers {alive} outlived their killed parent"


def _slot_after_a_pause(_):
    time.sleep(0.3)  # long enough that both workers take tasks
    return sweep.WORKER_SLOT


def test_each_local_worker_takes_its_own_slot_and_so_its_own_gpu():
    with sweep._executor(None, 2) as pool:
        slots = set(pool.map(_slot_after_a_pause, range(6)))
    assert slots == {0, 1}
    assert sweep.WORKER_SLOT is None  # the parent is no worker


@pytest.mark.parametrize("slot,gpus,expected", [(0, 2, 0), (1, 2, 1), (2, 2, 0), (5, 4, 1), (3, 1, 0)])
def test_pin_gpu_spreads_workers_over_the_visible_gpus(monkeypatch, slot, gpus, expected):
    chosen = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    assert sweep.pin_gpu(slot) == expected and chosen == [expected]


def test_pin_gpu_leaves_a_cpu_only_process_alone(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert sweep.pin_gpu(3) is None
