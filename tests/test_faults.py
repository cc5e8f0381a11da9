"""Faults and bad input, through the command lines as a user meets them.

- a training process killed (SIGKILL) after a checkpoint resumes from it and ends bit-identical to an
  uninterrupted run;
- each kind of bad input ends with one ``error: …`` line naming the fix, a non-zero exit, no
  traceback and no half-written result; that includes damaged files (checkpoints, snapshots, data
  files), whose messages never pass on a library's advice to load them unsafely;
- nothing opens a network connection, at import or while training and scoring.
"""

import dataclasses
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import types

import numpy as np
import pytest
import torch

from dvae_core import cli, reproduce, runs
from dvae_core.data import make_dataset
from dvae_core.data.files import DataFileError
from dvae_core.train import CHECKPOINT, load_checkpoint, snapshot_path, train
from test_data import write_tiny_dsprites
from test_train import tiny_config

TIMING_KEYS = {"images_per_s", "data_fraction"}


def child_env(tmp_path) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "DVAE_PROGRESS": "0", "DVAE_RUNS": str(tmp_path / "default_store")}


def write_config(path, data) -> str:
    path.write_text(json.dumps(data))
    return str(path)


def dvae_cli(tmp_path, *args, module="dvae_core.cli") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=tmp_path, env=child_env(tmp_path),
                          capture_output=True, text=True, timeout=300)


def assert_clean_error(proc, status: int, *fragments: str) -> str:
    """A non-zero exit whose stderr ends in exactly one ``error:`` line holding every fragment."""
    assert proc.returncode == status, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], proc.stderr
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    assert proc.stdout == "", "a failed run printed a run folder"
    return errors[0]


def no_results(store) -> list:
    """Anything in a store that looks like a result: a checkpoint, a recipe, a temp file."""
    return [p for p in store.rglob("*") if p.is_file() and p.name != ".lock"] if store.exists() else []


# ------------------------------------------------------------------------------------ kill and resume


def test_killed_training_resumes_and_matches_an_uninterrupted_run(tmp_path, one_torch_thread):
    config = tiny_config(steps=80, checkpoint_every=10, log_every=5)
    path = write_config(tmp_path / "run.json", config.to_dict())
    store = tmp_path / "store"
    checkpoint = runs.run_dir(config, store) / CHECKPOINT
    args = [sys.executable, "-m", "dvae_core.cli", path, "--store", str(store), "--device", "cpu"]
    victim = subprocess.Popen(args, cwd=tmp_path, env=child_env(tmp_path), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not checkpoint.exists():
        assert victim.poll() is None, f"training ended before its first checkpoint: {victim.communicate()}"
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    victim.communicate()
    assert victim.returncode == -signal.SIGKILL
    killed_at = load_checkpoint(checkpoint)["step"]
    assert 0 < killed_at < config.steps, f"the run was not interrupted (checkpoint at step {killed_at})"

    again = dvae_cli(tmp_path, path, "--store", store, "--device", "cpu")
    assert again.returncode == 0, again.stderr
    assert f"resuming from step {killed_at} of {config.steps}" in again.stderr
    assert again.stdout.strip() == str(runs.run_dir(config, store))
    assert not list(checkpoint.parent.glob("*.tmp")), "a temp checkpoint was left behind"

    resumed = load_checkpoint(checkpoint)
    reference = train(config, tmp_path / "uninterrupted", device="cpu", progress=False)
    assert resumed["step"] == config.steps
    expected = reference["model"].state_dict()
    assert expected.keys() == resumed["model"].keys()
    assert all(torch.equal(expected[k], resumed["model"][k]) for k in expected), "parameters differ"
    strip = lambda history: [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in history]  # noqa: E731
    assert strip(json.loads(resumed["history"])) == strip(reference["history"]), "logged losses differ"


# ----------------------------------------------------------------------------------------- bad input


def test_truncated_checkpoint(tmp_path, one_torch_thread):
    config = tiny_config(steps=4)
    store = tmp_path / "store"
    runs.get_or_train(config, store, device="cpu", progress=False)
    checkpoint = runs.run_dir(config, store) / CHECKPOINT
    damaged = checkpoint.read_bytes()[:1000]
    checkpoint.write_bytes(damaged)
    proc = dvae_cli(tmp_path, write_config(tmp_path / "c.json", config.to_dict()), "--store", store)
    assert_clean_error(proc, 1, f"cannot read checkpoint {checkpoint}", "truncated or not a dvae checkpoint",
                       "delete it (and its run folder) to retrain")
    assert checkpoint.read_bytes() == damaged and not list(checkpoint.parent.glob("*.tmp"))


def test_foreign_file_in_place_of_a_checkpoint(tmp_path):
    config = tiny_config(steps=4)
    checkpoint = runs.run_dir(config, tmp_path / "store") / CHECKPOINT
    checkpoint.parent.mkdir(parents=True)
    torch.save({"state_dict": {"weight": torch.zeros(3)}, "epoch": 7}, checkpoint)  # someone else's model file
    proc = dvae_cli(tmp_path, write_config(tmp_path / "c.json", config.to_dict()), "--store", tmp_path / "store")
    assert_clean_error(proc, 1, f"{checkpoint} is not a dvae checkpoint", "delete it (and its run folder) to retrain")


def test_unknown_profile(tmp_path):
    proc = dvae_cli(tmp_path, "--profile", "fast", module="dvae_core.reproduce")
    assert proc.returncode == 2 and proc.stderr == "error: unknown profile 'fast': choose one of smoke, preview, paper\n"
    assert not (reproduce.RESULTS_DIR / "fast").exists()


def test_unknown_dataset(tmp_path):
    proc = dvae_cli(tmp_path, write_config(tmp_path / "c.json", tiny_config(dataset="dsprite").to_dict()),
                    "--store", tmp_path / "store")
    assert_clean_error(proc, 2, "unknown dataset 'dsprite' (did you mean 'dsprites'?); choose one of",
                       "colored_sprites")
    assert no_results(tmp_path / "store") == []


def test_unknown_config_parameter(tmp_path):
    data = tiny_config().to_dict()
    data["stpes"] = data.pop("steps")
    proc = dvae_cli(tmp_path, write_config(tmp_path / "c.json", data), "--store", tmp_path / "store")
    assert_clean_error(proc, 2, "c.json: unknown parameter 'stpes' (did you mean 'steps'?); valid: dataset,",
                       "batch_size")
    data = {**tiny_config().to_dict(), "model": {"latnet_dim": 4}}
    proc = dvae_cli(tmp_path, write_config(tmp_path / "c.json", data), "--store", tmp_path / "store")
    assert_clean_error(proc, 2, "unknown model parameter 'latnet_dim' (did you mean 'latent_dim'?)")
    assert no_results(tmp_path / "store") == []


@pytest.mark.parametrize("change, message", [
    ({"seed": -1}, "parameter 'seed' must be a whole number from 0 to 2**63 - 1, got -1"),
    ({"seed": 2 ** 70}, "parameter 'seed' must be a whole number from 0 to 2**63 - 1"),
    ({"lr": float("nan")}, "parameter 'lr' must be a finite number above 0, got nan"),
    ({"model": {"latent_dim": 0}}, "model parameter 'latent_dim' must be at least 1, got 0"),
    ({"dataset_kwargs": {"resolution": "big"}}, "dataset_kwargs 'resolution' must be a whole number of pixels"),
])
def test_out_of_range_parameters_are_refused_before_training(tmp_path, change, message):
    data = tiny_config().to_dict()
    for key, value in change.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) else value
    proc = dvae_cli(tmp_path, write_config(tmp_path / "c.json", data), "--store", tmp_path / "store")
    assert_clean_error(proc, 2, message)
    assert no_results(tmp_path / "store") == []


def test_missing_data_file(tmp_path):
    missing = tmp_path / "nowhere" / "dsprites.npz"
    data = {**tiny_config().to_dict(), "dataset": "dsprites_npz", "dataset_kwargs": {"path": str(missing)}}
    proc = dvae_cli(tmp_path, write_config(tmp_path / "c.json", data), "--store", tmp_path / "store")
    assert_clean_error(proc, 1, f"not found at {str(missing)!r}", "this code never downloads")
    assert no_results(tmp_path / "store") == []


def test_nan_loss(tmp_path):
    data = tiny_config(lr=1e30, checkpoint_every=100).to_dict()  # steps of 1e30 overflow the weights
    proc = dvae_cli(tmp_path, write_config(tmp_path / "c.json", data), "--store", tmp_path / "store")
    assert_clean_error(proc, 1, "step 2: loss term 'loss' is nan; lower the learning rate")
    assert no_results(tmp_path / "store") == []


def test_failed_notebook_leaves_no_partial_output(tmp_path, monkeypatch):
    """reproduce keeps a notebook's output only if it ran to the end."""
    def half_written_then_crash(source, target, **kwargs):
        with open(target, "w") as handle:
            handle.write('{"cells": [')
        raise RuntimeError("cell 3 raised NonFiniteLossError")

    monkeypatch.setitem(sys.modules, "papermill", types.SimpleNamespace(execute_notebook=half_written_then_crash))
    notebook = tmp_path / "dvae_sweep_fault.ipynb"
    notebook.write_text("{}")
    output = tmp_path / "out" / notebook.name
    with pytest.raises(RuntimeError, match="cell 3"):
        reproduce.execute(notebook, output, "smoke", "cpu", 0)
    assert not output.exists()
    assert not (reproduce.REPO_ROOT / "_build" / "partial" / "smoke" / notebook.name).exists()


# ----------------------------------------------------------------------- loopback, model and data, damaged files

UNSAFE_ADVICE = ("weights_only", "allow_pickle", "pickle.load")


def test_reproduce_without_loopback_stops_before_any_notebook(monkeypatch, capsys):
    """With loopback down every kernel would wait 60 s and fail "Kernel didn't respond": one line instead."""
    reproduce.check_loopback()  # this machine has loopback: the check passes

    class LoopbackDown(socket.socket):
        def bind(self, address):
            raise OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address")

    def no_notebook_may_run(*args, **kwargs):
        raise AssertionError("a notebook was started without loopback")

    monkeypatch.setattr(socket, "socket", LoopbackDown)
    monkeypatch.setattr(reproduce, "execute", no_notebook_may_run)
    with pytest.raises(SystemExit) as exit_:
        reproduce.main(["--profile", "smoke", "--only", reproduce.find_notebooks()[0].stem])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == (
        f"error: reproduce runs notebooks through a Jupyter kernel, which needs loopback TCP (127.0.0.1); [Errno "
        f"{errno.EADDRNOTAVAIL}] Cannot assign requested address: bring the loopback interface up (e.g. `ip link set "
        f"lo up`) and run again\n")


@pytest.mark.parametrize("change, message", [
    ({"model": {"in_channels": 3}}, "model.in_channels is 3 but dsprites images have 1 channel: set model.in_channels "
                                    "to 1"),
    ({"dataset_kwargs": {"resolution": 64}}, "model.resolution is 32 but dsprites images are 64×64: set "
                                             "model.resolution to 64 (or dataset_kwargs 'resolution' to 32)"),
    ({"dataset": "colored_sprites", "model": {"in_channels": 1}},
     "model.in_channels is 1 but colored_sprites images have 3 channels: set model.in_channels to 3"),
])
def test_a_model_that_cannot_read_the_data_is_refused_before_the_store_is_touched(tmp_path, change, message):
    data = tiny_config().to_dict()
    for key, value in change.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) else value
    store = tmp_path / "store"
    proc = dvae_cli(tmp_path, write_config(tmp_path / "c.json", data), "--store", store)
    assert_clean_error(proc, 2, message)
    assert not store.exists(), "a refused recipe made a run folder"


def test_a_grid_with_one_mismatched_recipe_trains_none(tmp_path):
    bad = {**tiny_config().to_dict(), "dataset_kwargs": {"resolution": 64}}
    store = tmp_path / "store"
    proc = dvae_cli(tmp_path, write_config(tmp_path / "grid.json", [tiny_config(steps=4).to_dict(), bad]),
                    "--store", store)
    assert_clean_error(proc, 2, f"run {runs.config_hash(cli.config_from_dict(bad))} (dsprites deconv",
                       "model.resolution is 32 but dsprites images are 64×64")
    assert not store.exists(), "the good recipe of the grid trained before the bad one was refused"


def test_train_refuses_a_mismatched_model_before_making_its_folder(tmp_path):
    config = tiny_config(model=dataclasses.replace(tiny_config().model, in_channels=3))
    with pytest.raises(ValueError, match="model.in_channels is 3 but dsprites images have 1 channel"):
        train(config, tmp_path / "run", device="cpu", progress=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("finished", [True, False])
def test_a_checkpoint_of_another_architecture_is_one_line(tmp_path, one_torch_thread, finished):
    """The recipe inside the checkpoint matches (the file was copied over, then its recipe put back), the
    weights do not: a count and one name, not torch's dump of every key."""
    config, store = tiny_config(steps=4), tmp_path / "store"
    other = tiny_config(steps=4, model=dataclasses.replace(config.model, encoder_channels=8, hidden=8))
    runs.get_or_train(config, store, device="cpu", progress=False)
    runs.get_or_train(other, store, device="cpu", progress=False)
    checkpoint = runs.run_dir(config, store) / CHECKPOINT
    state = load_checkpoint(checkpoint)
    state["model"] = load_checkpoint(runs.run_dir(other, store) / CHECKPOINT)["model"]
    state["step"] = config.steps if finished else 2  # served as finished, or resumed
    torch.save(state, checkpoint)
    proc = dvae_cli(tmp_path, write_config(tmp_path / "c.json", config.to_dict()), "--store", store)
    error = assert_clean_error(
        proc, 1, f"{checkpoint} holds the weights of another architecture than its recipe builds (12 tensors of "
                 f"another shape, e.g. encoder.convs.0.weight [8, 1, 4, 4] in the file, [4, 1, 4, 4] in the model)",
        f"delete {checkpoint.parent} to retrain")
    assert len(error) < 500 and "size mismatch" not in error


def test_missing_and_unexpected_weights_are_counted(tmp_path):
    config, store = tiny_config(steps=4), tmp_path / "store"
    runs.get_or_train(config, store, device="cpu", progress=False)
    checkpoint = runs.run_dir(config, store) / CHECKPOINT
    state = load_checkpoint(checkpoint)
    weights = dict(state["model"])
    weights["decoder.extra.weight"] = weights.pop(next(k for k in weights if k.startswith("decoder.")))
    state["model"] = weights
    torch.save(state, checkpoint)
    with pytest.raises(RuntimeError, match=r"\(1 missing tensors, e.g. decoder\.\S+; 1 unexpected tensors, e.g. "
                                           r"decoder\.extra\.weight\): delete "):
        runs.load_run(config, store, device="cpu")


@pytest.mark.parametrize("content", ["random bytes", "numpy array"])
def test_an_unreadable_checkpoint_never_suggests_loading_it_unsafely(tmp_path, content):
    config = tiny_config(steps=4)
    checkpoint = runs.run_dir(config, tmp_path / "store") / CHECKPOINT
    checkpoint.parent.mkdir(parents=True)
    if content == "random bytes":
        checkpoint.write_bytes(np.random.default_rng(0).bytes(4000))
    else:  # a pickle torch's safe loader refuses (a global it does not allow): its text says weights_only=False
        torch.save({"model": np.zeros(3)}, checkpoint)
    proc = dvae_cli(tmp_path, write_config(tmp_path / "c.json", config.to_dict()), "--store", tmp_path / "store")
    error = assert_clean_error(proc, 1, f"cannot read checkpoint {checkpoint} (UnpicklingError: Unsupported ",
                               "it is truncated or not a dvae checkpoint: delete it (and its run folder) to retrain")
    assert not any(word in proc.stderr for word in UNSAFE_ADVICE), error


def test_a_random_bytes_npz_names_the_file_via_the_cli(tmp_path):
    junk = tmp_path / "dsprites.npz"
    junk.write_bytes(np.random.default_rng(0).bytes(5000))
    data = {**tiny_config().to_dict(), "dataset": "dsprites_npz", "dataset_kwargs": {"path": str(junk)}}
    proc = dvae_cli(tmp_path, write_config(tmp_path / "c.json", data), "--store", tmp_path / "store")
    assert_clean_error(proc, 1, f"error: {junk} is not a valid .npz file (not a zip archive): download it again, "
                                f"or point the dataset's 'path' parameter (or $DVAE_DATA_DIR) at the right file")
    assert "allow_pickle" not in proc.stderr
    assert not (tmp_path / "store").exists()


def damaged_npz(path, how: str) -> None:
    write_tiny_dsprites(path, image_side=64)
    data = bytearray(path.read_bytes())
    if how == "random bytes":
        data = np.random.default_rng(0).bytes(len(data))
    elif how == "cut short":
        data = data[: len(data) // 2]
    else:  # flipped bytes inside the compressed images: the zip directory still reads
        middle = len(data) // 3
        data[middle: middle + 64] = bytes(255 - b for b in data[middle: middle + 64])
    path.write_bytes(bytes(data))


def damaged_file(tmp_path, loader: str) -> tuple[str, dict, object]:
    """A loader's file with junk in it: (dataset, kwargs, the damaged path)."""
    junk = np.random.default_rng(1).bytes(3000)
    if loader == "shapes3d_h5":
        (tmp_path / "3dshapes.h5").write_bytes(junk)
        return loader, {"path": tmp_path / "3dshapes.h5"}, tmp_path / "3dshapes.h5"
    if loader == "mnist_files":
        (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b" + junk)
        (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b" + junk)
        return loader, {"root": tmp_path}, tmp_path / "train-images-idx3-ubyte.gz"
    if loader == "binarized_mnist":
        (tmp_path / "binarized_mnist_train.amat").write_bytes(junk)
        return loader, {"root": tmp_path}, tmp_path / "binarized_mnist_train.amat"
    (tmp_path / "data.mat").write_bytes(junk)  # omniglot, caltech_silhouettes
    return loader, {"path": tmp_path / "data.mat"}, tmp_path / "data.mat"


@pytest.mark.parametrize("how", ["random bytes", "cut short", "flipped bytes"])
def test_a_damaged_npz_names_the_file_and_never_suggests_allow_pickle(tmp_path, how):
    path = tmp_path / "dsprites.npz"
    damaged_npz(path, how)
    with pytest.raises(DataFileError) as raised:
        make_dataset("dsprites_npz", path=path)
    message = str(raised.value)
    assert message.startswith(f"{path} is not a valid .npz file (") and message.endswith("at the right file")
    assert "\n" not in message and not any(word in message for word in UNSAFE_ADVICE), message


@pytest.mark.parametrize("loader", ["shapes3d_h5", "mnist_files", "binarized_mnist", "omniglot", "caltech_silhouettes"])
def test_other_damaged_data_files_name_the_file(tmp_path, loader):
    name, kwargs, path = damaged_file(tmp_path, loader)
    with pytest.raises(DataFileError, match=f"^{path} is not a valid .+ file \\(.+\\): download it again, or point "):
        make_dataset(name, **kwargs)


@pytest.mark.parametrize("junk", ["truncated int", "random bytes", "another architecture"])
def test_a_junk_snapshot_names_the_file_and_the_fix(tmp_path, capsys, junk):
    config, store = tiny_config(steps=4, snapshot_every=2), tmp_path / "store"
    runs.get_or_train(config, store, device="cpu", progress=False)
    directory = runs.run_dir(config, store)
    snapshot = snapshot_path(directory, 2)
    if junk == "truncated int":
        snapshot.write_bytes(b"J\x00")  # a pickle opcode cut short: struct's "unpack requires a buffer of 4 bytes"
    elif junk == "random bytes":
        snapshot.write_bytes(np.random.default_rng(0).bytes(3000))
    else:
        other = dataclasses.replace(config.model, hidden=8)
        torch.save(train(tiny_config(steps=1, model=other), tmp_path / "other", device="cpu",
                         progress=False)["model"].state_dict(), snapshot)

    def main(argv):  # notebooks read snapshots; through the CLI's error path the message is one line
        runs.load_snapshots(config, store, device="cpu")
        return 0

    assert cli.run_main(main, []) == cli.EXIT_FAILED
    error = capsys.readouterr().err
    assert error.startswith(f"error: cannot read snapshot {snapshot} (" if junk != "another architecture" else
                            f"error: {snapshot} holds the weights of another architecture than its recipe builds (")
    assert error.endswith(f": delete {directory} to train the run again with all its snapshots\n"), error
    assert error.count("\n") == 1 and not any(word in error for word in UNSAFE_ADVICE), error


# ------------------------------------------------------------------------------------------- offline

BLOCK_NETWORK = textwrap.dedent("""
    import ipaddress, socket
    attempts = []

    def _is_local(address):
        if not isinstance(address, tuple):
            return True  # a Unix socket path
        host = str(address[0]).split("%")[0]
        if host in ("", "localhost"):
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False  # a host name: resolving it is network traffic

    def _blocked(what, address):
        attempts.append(f"{what} {address!r}")
        raise OSError(f"network access blocked by the test: {what} {address!r}")

    def _guard(name):
        real = getattr(socket.socket, name)
        def guarded(self, *args):
            if not _is_local(args[-1]):
                _blocked(name, args[-1])
            return real(self, *args)
        setattr(socket.socket, name, guarded)

    for _name in ("connect", "connect_ex", "sendto"):
        _guard(_name)
    _real_getaddrinfo = socket.getaddrinfo
    def _getaddrinfo(host, *args, **kwargs):
        if host is not None and not _is_local((host.decode() if isinstance(host, bytes) else host, 0)):
            _blocked("getaddrinfo", host)
        return _real_getaddrinfo(host, *args, **kwargs)
    socket.getaddrinfo = _getaddrinfo
""")

OFFLINE_RUN = textwrap.dedent("""
    import importlib, json, pkgutil, sys
    from pathlib import Path
    import dvae_core
    names = sorted(m.name for m in pkgutil.walk_packages(dvae_core.__path__, "dvae_core."))
    for name in names:
        importlib.import_module(name)

    import numpy as np
    from dvae_core import cli, runs, sweep
    from dvae_core.evaluate import mean_encoder
    from dvae_core.metrics import mig, sample_codes
    from dvae_core.train import build_dataset

    store, config_path = Path(sys.argv[1]), sys.argv[2]
    config = cli.load_configs(Path(config_path))[0]
    model = runs.get_or_train(config, store, device="cpu", progress=False)["model"]
    sweep.run_sweep([config], store=store, device="cpu", progress=False)
    assert cli.main([config_path, "--store", str(store), "--device", "cpu"]) == 0
    codes, factors = sample_codes(build_dataset(config), mean_encoder(model), 200, np.random.default_rng(0))
    score = mig(codes, factors)["score"]
    print(json.dumps({"modules": names, "mig": float(score), "attempts": attempts}))
""")


def test_nothing_opens_a_network_connection(tmp_path):
    config = write_config(tmp_path / "c.json", tiny_config(steps=4).to_dict())
    # self-check: the guard does refuse a remote address (TEST-NET-1, never routed)
    probe = subprocess.run([sys.executable, "-c", BLOCK_NETWORK + "import socket\n"
                            "try:\n    socket.create_connection(('192.0.2.1', 80), timeout=1)\n"
                            "except OSError as err:\n    print(err)\n"], capture_output=True, text=True, timeout=60)
    assert "network access blocked by the test" in probe.stdout, probe
    proc = subprocess.run([sys.executable, "-c", BLOCK_NETWORK + OFFLINE_RUN, str(tmp_path / "store"), config],
                          cwd=tmp_path, env=child_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["attempts"] == []
    assert {"dvae_core.cli", "dvae_core.sweep", "dvae_core.reproduce", "dvae_core.train"} <= set(report["modules"])
    assert report["mig"] == report["mig"]  # a number, not NaN
