"""The training loop: determinism, checkpoint round trip and resume, the NaN guard, the run store."""

import json
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from dvae_core import runs
from dvae_core.models import VAEConfig
from dvae_core.infra import resolve_device
from dvae_core.train import CHECKPOINT, NonFiniteLossError, TrainConfig, load_checkpoint, train


def tiny_config(**overrides) -> TrainConfig:
    model = VAEConfig(decoder="deconv", latent_dim=4, in_channels=1, resolution=32, encoder_channels=4,
                      decoder_channels=4, hidden=16)
    base = dict(dataset="dsprites", dataset_kwargs={"resolution": 32}, model=model, steps=12, batch_size=8,
                lr=1e-3, seed=3, checkpoint_every=5, log_every=4)
    base.update(overrides)
    return TrainConfig(**base)


def params(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_same_seed_same_model(tmp_path):
    a = train(tiny_config(), tmp_path / "a", device="cpu", progress=False)
    b = train(tiny_config(), tmp_path / "b", device="cpu", progress=False)
    assert torch.equal(params(a["model"]), params(b["model"]))
    c = train(tiny_config(seed=4), tmp_path / "c", device="cpu", progress=False)
    assert not torch.equal(params(a["model"]), params(c["model"]))


def train_interrupted(config: TrainConfig, prefix_steps: int, directory) -> dict:
    """Train ``config`` as if the process died right after step ``prefix_steps``'s checkpoint, then run it
    again: a ``prefix_steps``-step run whose checkpoint is relabelled as ``config``'s, resumed to the end."""
    train(replace(config, steps=prefix_steps), directory, device="cpu", progress=False)
    state = torch.load(directory / CHECKPOINT, weights_only=True)
    state["config"] = config.to_dict()  # the prefix run is the full run stopped at step prefix_steps
    torch.save(state, directory / CHECKPOINT)
    return train(config, directory, device="cpu", progress=False)


def test_resume_matches_uninterrupted_run(tmp_path):
    full = train(tiny_config(), tmp_path / "full", device="cpu", progress=False)
    interrupted = tmp_path / "interrupted"
    resumed = train_interrupted(tiny_config(), 5, interrupted)
    assert torch.equal(params(full["model"]), params(resumed["model"]))
    assert load_checkpoint(interrupted / CHECKPOINT)["step"] == 12


def test_checkpoint_round_trip(tmp_path):
    result = train(tiny_config(), tmp_path, device="cpu", progress=False)
    state = load_checkpoint(tmp_path / CHECKPOINT)
    assert state["step"] == 12 and state["config"] == tiny_config().to_dict()
    assert not list(tmp_path.glob("*.tmp")), "atomic save left a temp file"
    history = json.loads(state["history"])
    assert [row["step"] for row in history] == [4, 8, 12]
    assert all(row["images_per_s"] > 0 for row in history)
    assert result["history"] == history


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    train(tiny_config(), tmp_path, device="cpu", progress=False)
    data = (tmp_path / CHECKPOINT).read_bytes()
    (tmp_path / CHECKPOINT).write_bytes(data[: len(data) // 2])
    with pytest.raises(RuntimeError, match="truncated or not a dvae checkpoint"):
        train(tiny_config(), tmp_path, device="cpu", progress=False)


def test_checkpoint_of_another_config_is_refused(tmp_path):
    train(tiny_config(steps=5), tmp_path, device="cpu", progress=False)
    with pytest.raises(RuntimeError, match="another configuration"):
        train(tiny_config(), tmp_path, device="cpu", progress=False)


def test_nan_loss_names_step_and_term(tmp_path, monkeypatch):
    from dvae_core.models import VAE

    real_loss = VAE.loss

    def loss_with_bad_kl(self, x, beta=1.0):
        terms = real_loss(self, x, beta)
        if not hasattr(self, "_calls"):
            self._calls = 0
        self._calls += 1
        if self._calls == 3:
            terms["kl"] = terms["kl"] * float("nan")
        return terms

    monkeypatch.setattr(VAE, "loss", loss_with_bad_kl)
    with pytest.raises(NonFiniteLossError, match=r"step 3: loss term 'kl' is nan"):
        train(tiny_config(), tmp_path, device="cpu", progress=False)


def test_unknown_device_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu")


def test_run_store_reuses_finished_runs(tmp_path):
    config = tiny_config()
    first = runs.get_or_train(config, store=tmp_path, device="cpu", progress=False)
    second = runs.get_or_train(config, store=tmp_path, device="cpu", progress=False)
    assert not first["reused"] and second["reused"]
    assert torch.equal(params(first["model"]), params(second["model"]))
    assert runs.config_hash(config) != runs.config_hash(tiny_config(beta=2.0))
    saved = json.loads((runs.run_dir(config, tmp_path) / "config.json").read_text())
    assert saved == json.loads(json.dumps(config.to_dict()))


def test_snapshots_are_the_weights_at_their_steps(tmp_path):
    config = tiny_config(snapshot_every=4)
    final = runs.get_or_train(config, store=tmp_path, device="cpu", progress=False)
    snapshots = runs.load_snapshots(config, store=tmp_path, device="cpu")
    assert [step for step, _ in snapshots] == [4, 8, 12]
    assert torch.equal(params(snapshots[-1][1]), params(final["model"]))
    assert not torch.equal(params(snapshots[0][1]), params(final["model"]))
    prefix = train(tiny_config(steps=4), tmp_path / "prefix", device="cpu", progress=False)
    assert torch.equal(params(snapshots[0][1]), params(prefix["model"]))  # snapshot 4 is the model after 4 steps
    # keeping snapshots changes neither the training nor existing runs' hashes
    assert torch.equal(params(final["model"]), params(train(tiny_config(), tmp_path / "plain", device="cpu",
                                                             progress=False)["model"]))
    assert "snapshot_every" not in tiny_config().to_dict()
    assert runs.load_snapshots(tiny_config(), store=tmp_path) == []


def test_missing_snapshot_names_the_fix(tmp_path):
    config = tiny_config(snapshot_every=4)
    runs.get_or_train(config, store=tmp_path, device="cpu", progress=False)
    next(runs.run_dir(config, tmp_path).glob("snapshots/*8.pt")).unlink()
    with pytest.raises(FileNotFoundError, match="get_or_train"):
        runs.load_snapshots(config, store=tmp_path, device="cpu")


def test_freed_memory_stays_in_the_process_on_glibc_and_weights_do_not_change(tmp_path):
    import platform

    from dvae_core.infra import keep_freed_memory

    assert keep_freed_memory() is (platform.libc_ver()[0] == "glibc")
    # the setting is process-wide: a run trained after it matches one trained in a fresh process before it
    fresh = subprocess.run([sys.executable, "-c", (
        "import torch, sys; sys.path.insert(0, %r); from test_train import tiny_config, params; "
        f"torch.set_num_threads({torch.get_num_threads()}); "
        "import dvae_core.train as t; t.keep_freed_memory = lambda: False; "
        "r = t.train(tiny_config(), %r, device='cpu', progress=False); torch.save(params(r['model']), %r)"
    ) % (str(Path(__file__).parent), str(tmp_path / "a"), str(tmp_path / "a.pt"))], capture_output=True, text=True)
    assert fresh.returncode == 0, fresh.stderr
    here = train(tiny_config(), tmp_path / "b", device="cpu", progress=False)
    assert torch.equal(torch.load(tmp_path / "a.pt"), params(here["model"]))


def test_a_resume_between_two_log_rows_logs_the_same_means(tmp_path, monkeypatch):
    """A checkpoint every 5 steps and a log row every 4: the window open at the checkpoint is kept in it."""
    import dvae_core.train as loop

    config = tiny_config(steps=12, checkpoint_every=5, log_every=4)
    real_save = loop.atomic_torch_save

    def save_then_die(obj, path):
        real_save(obj, path)
        raise KeyboardInterrupt  # killed right after the first checkpoint, at step 5

    monkeypatch.setattr(loop, "atomic_torch_save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "resumed", device="cpu", progress=False)
    monkeypatch.setattr(loop, "atomic_torch_save", real_save)
    assert load_checkpoint(tmp_path / "resumed" / CHECKPOINT)["step"] == 5
    resumed = train(config, tmp_path / "resumed", device="cpu", progress=False)["history"]
    reference = train(config, tmp_path / "reference", device="cpu", progress=False)["history"]
    timing = {"images_per_s", "data_fraction"}
    strip = lambda history: [{k: v for k, v in row.items() if k not in timing} for row in history]  # noqa: E731
    assert [row["step"] for row in resumed] == [4, 8, 12]
    assert strip(resumed) == strip(reference)


def test_a_longer_run_continues_the_finished_shorter_one_bit_identically(tmp_path):
    """A budget curve's runs: the 12-step run starts from the stored 8-step run's checkpoint (8 is a log step)
    and ends with the weights and history of a 12-step run trained from step 0."""
    store, scratch = tmp_path / "store", tmp_path / "scratch"
    shorter, longer = tiny_config(steps=8), tiny_config(steps=12)
    runs.get_or_train(shorter, store=store, device="cpu", progress=False)
    continued = runs.get_or_train(longer, store=store, device="cpu", progress=False)
    alone = runs.get_or_train(longer, store=scratch, device="cpu", progress=False)
    assert continued["continued_from"] == 8 and alone["continued_from"] is None
    assert torch.equal(params(continued["model"]), params(alone["model"]))
    strip = lambda h: [{k: v for k, v in row.items() if k not in ("images_per_s", "data_fraction")} for row in h]
    assert strip(continued["history"]) == strip(alone["history"])
    assert runs.load_run(longer, store, device="cpu")["continued_from"] == 8
    # the shorter run is untouched and still served as it was
    assert runs.load_run(shorter, store, device="cpu")["config"].steps == 8


@pytest.mark.parametrize("shorter, longer, prefix", [
    (dict(steps=8), dict(steps=12), True),
    (dict(steps=6), dict(steps=12), False),                      # 6 is not a log step of the longer run
    (dict(steps=8, beta=2.0), dict(steps=12), False),            # another recipe
    (dict(steps=12), dict(steps=8), False),                      # longer, not shorter
    (dict(steps=8, snapshot_every=4), dict(steps=12, snapshot_every=4), False),  # snapshots would be missing
    (dict(steps=8, seed=4), dict(steps=12), False),
])
def test_which_runs_are_prefixes(shorter, longer, prefix):
    assert runs.is_prefix(tiny_config(**shorter), tiny_config(**longer)) is prefix


def test_a_run_with_no_finished_prefix_trains_from_step_zero(tmp_path):
    runs.get_or_train(tiny_config(steps=8, seed=4), store=tmp_path, device="cpu", progress=False)
    result = runs.get_or_train(tiny_config(steps=12), store=tmp_path, device="cpu", progress=False)
    assert result["continued_from"] is None
    assert not (runs.run_dir(tiny_config(steps=12), tmp_path) / runs.EXTENDED).exists()


def test_host_reads_scale_with_log_rows_not_steps(tmp_path, monkeypatch):
    """Loss terms stay on the training device between log rows: on a GPU each read of a tensor's value is a
    host–device sync, so reading every term every step (``.item()`` per term, as the loop once did) would
    stall the device every step. Counted: reads made by dvae_core's own code (Adam's reads of its step
    counters are of CPU tensors, no sync)."""
    import sys

    reads = {"n": 0}
    for name in ("item", "__float__", "__int__", "__bool__", "tolist"):
        real = getattr(torch.Tensor, name)

        def counted(self, *args, _real=real, **kwargs):
            if "dvae_core" in sys._getframe(1).f_code.co_filename:
                reads["n"] += 1
            return _real(self, *args, **kwargs)
        monkeypatch.setattr(torch.Tensor, name, counted)

    def reads_for(steps: int) -> int:
        reads["n"] = 0
        config = tiny_config(steps=steps, log_every=steps // 3, checkpoint_every=steps)
        train(config, tmp_path / str(steps), device="cpu", progress=False)
        return reads["n"]

    assert 0 < reads_for(12) == reads_for(24)  # the same 3 log rows and 1 checkpoint: the same reads


def test_gpu_speed_options_are_off_by_default_and_part_of_the_recipe_when_on(tmp_path, monkeypatch):
    plain = tiny_config()
    assert "precision" not in plain.to_dict() and "compile" not in plain.to_dict()
    bf16, tf32 = replace(plain, precision="bf16"), replace(plain, precision="tf32")
    assert len({runs.config_hash(c) for c in (plain, bf16, tf32)}) == 3
    assert TrainConfig.from_dict(json.loads(bf16.canonical())) == bf16
    reference = train(plain, tmp_path / "fp32", device="cpu", progress=False)
    # bfloat16 autocast runs (on the CPU too) and changes the arithmetic; the weights stay float32
    low = train(bf16, tmp_path / "bf16", device="cpu", progress=False)
    assert all(p.dtype == torch.float32 for p in low["model"].parameters())
    assert math.isfinite(low["history"][-1]["loss"]) and not torch.equal(params(low["model"]), params(reference["model"]))
    # TF32 is a CUDA matmul/convolution setting: on the CPU the same arithmetic, and the flags are restored
    flags = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    assert torch.equal(params(train(tf32, tmp_path / "tf32", device="cpu", progress=False)["model"]),
                       params(reference["model"]))
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == flags
    # compile=True trains through torch.compile(model.loss)
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: compiled.append(fn) or fn)
    again = train(replace(plain, compile=True), tmp_path / "compiled", device="cpu", progress=False)
    assert len(compiled) == 1 and compiled[0].__name__ == "loss"
    assert torch.equal(params(again["model"]), params(reference["model"]))
    with pytest.raises(ValueError, match="precision 'fp8'"):
        train(replace(plain, precision="fp8"), tmp_path / "bad", device="cpu", progress=False)
    assert not (tmp_path / "bad").exists()
