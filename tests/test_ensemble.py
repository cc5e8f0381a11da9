"""Runs trained together as one vectorised ensemble (dvae_core.ensemble): each member is the run trained alone
(within float tolerance), a killed ensemble resumes bit for bit, and members and lone runs resume each other."""

from dataclasses import replace

import pytest
import torch

from dvae_core import runs
from dvae_core import train as train_module
from dvae_core.ensemble import ensemble_groups, ensemble_key, get_or_train_ensemble, train_ensemble
from dvae_core.models.factor_vae import FactorVAEModelConfig
from dvae_core.sweep import run_sweep
from dvae_core.train import CHECKPOINT, NonFiniteLossError, load_checkpoint, train
from test_sweep import weight_sum
from test_train import params, tiny_config

#: How far a member may be from its run trained alone after 12 Adam steps (largest parameter difference).
#: Not zero: vmap sums the K members' convolutions as one grouped convolution and their matrix products as one
#: batched product, in another order than K separate calls; Adam then amplifies float32 rounding in the first
#: steps (its update is ±lr wherever a gradient is tiny), so differences are of order lr × rounding, far below lr.
TOLERANCE = 1e-5
TIMING = {"images_per_s", "data_fraction", "ensemble"}


def members(decoder: str = "deconv", **overrides):
    model = replace(tiny_config().model, decoder=decoder)
    return [tiny_config(model=model, seed=seed, beta=beta, **overrides) for seed, beta in ((3, 1.0), (4, 4.0), (5, 1.0))]


def losses(history):
    return [{k: v for k, v in row.items() if k not in TIMING} for row in history]


def assert_close_histories(a, b, rel=1e-4):
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for row_a, row_b in zip(losses(a), losses(b)):
        assert row_a.keys() == row_b.keys()
        for key in row_a:
            assert row_a[key] == pytest.approx(row_b[key], rel=rel, abs=1e-6), key


@pytest.mark.parametrize("decoder", ["deconv", "sb"])
def test_a_member_is_the_run_trained_alone(tmp_path, decoder, one_torch_thread):
    configs = members(decoder)
    together = train_ensemble(configs, [tmp_path / f"e{k}" for k in range(3)], device="cpu", progress=False)
    for k, config in enumerate(configs):
        alone = train(config, tmp_path / f"a{k}", device="cpu", progress=False)
        difference = (params(alone["model"]) - params(together[k]["model"])).abs().max().item()
        assert difference < TOLERANCE, (k, difference)
        assert_close_histories(alone["history"], together[k]["history"])
        assert all(row["ensemble"] == 3 and row["images_per_s"] > 0 for row in together[k]["history"])
        assert together[k]["config"] == config and not together[k]["model"].training
    # different seeds and β gave different runs: the members did not collapse into one
    assert not torch.equal(params(together[0]["model"]), params(together[2]["model"]))


def relabel(directory, config):
    """The checkpoint in ``directory`` as ``config``'s: a run killed right after that checkpoint."""
    state = torch.load(directory / CHECKPOINT, weights_only=True)
    state["config"] = config.to_dict()
    torch.save(state, directory / CHECKPOINT)


class Killed(BaseException):
    pass


def test_a_killed_ensemble_resumes_bit_for_bit(tmp_path, monkeypatch, one_torch_thread):
    configs = members("sb", checkpoint_every=5)  # log rows every 4 steps: killed between two of them
    full = train_ensemble(configs, [tmp_path / f"full{k}" for k in range(3)], device="cpu", progress=False)
    directories = [tmp_path / f"killed{k}" for k in range(3)]
    real_save, saves = train_module.atomic_torch_save, []

    def save_then_die(obj, path):
        real_save(obj, path)
        saves.append(path)
        if len(saves) == len(configs):  # every member's step-5 checkpoint is written: the process dies
            raise Killed

    monkeypatch.setattr(train_module, "atomic_torch_save", save_then_die)  # the loop's saves
    with pytest.raises(Killed):
        train_ensemble(configs, directories, device="cpu", progress=False)
    monkeypatch.undo()
    assert all(load_checkpoint(d / CHECKPOINT)["step"] == 5 for d in directories)
    resumed = train_ensemble(configs, directories, device="cpu", progress=False)
    for a, b in zip(full, resumed):
        assert torch.equal(params(a["model"]), params(b["model"]))
        assert losses(a["history"]) == losses(b["history"])
    for directory in directories:
        state = load_checkpoint(directory / CHECKPOINT)
        assert state["step"] == 12 and not list(directory.glob("*.tmp"))


def test_members_and_lone_runs_resume_each_other(tmp_path, one_torch_thread):
    configs = members("deconv")
    # a member's checkpoint resumed by train alone
    directories = [tmp_path / f"e{k}" for k in range(3)]
    train_ensemble([replace(c, steps=8) for c in configs], directories, device="cpu", progress=False)
    relabel(directories[1], configs[1])
    alone_after_ensemble = train(configs[1], directories[1], device="cpu", progress=False)
    reference = train(configs[1], tmp_path / "reference", device="cpu", progress=False)
    assert (params(alone_after_ensemble["model"]) - params(reference["model"])).abs().max() < TOLERANCE
    assert_close_histories(alone_after_ensemble["history"], reference["history"])
    # lone runs' checkpoints resumed by an ensemble
    directories = [tmp_path / f"a{k}" for k in range(3)]
    for config, directory in zip(configs, directories):
        train(replace(config, steps=8), directory, device="cpu", progress=False)
        relabel(directory, config)
    together = train_ensemble(configs, directories, device="cpu", progress=False)
    assert (params(together[1]["model"]) - params(reference["model"])).abs().max() < TOLERANCE
    assert_close_histories(together[1]["history"], reference["history"])


def test_a_nan_names_the_member_the_step_and_the_term(tmp_path, monkeypatch):
    from dvae_core.models import VAE

    real_loss = VAE.loss
    calls = {"n": 0}

    def loss_with_bad_kl(self, x, beta=1.0, noise=None):
        terms = real_loss(self, x, beta, noise)
        calls["n"] += 1
        if calls["n"] == 3:  # the third traced step; under vmap every member's kl goes NaN
            terms["kl"] = terms["kl"] * float("nan")
        return terms

    monkeypatch.setattr(VAE, "loss", loss_with_bad_kl)
    with pytest.raises(NonFiniteLossError, match=r"run seed=3 beta=1.0: step 3: loss term 'kl' is nan"):
        train_ensemble(members(), [tmp_path / f"e{k}" for k in range(3)], device="cpu", progress=False)
    assert not any((tmp_path / f"e{k}" / CHECKPOINT).exists() for k in range(3))  # nothing NaN-touched saved


def test_which_runs_train_together():
    vae = members()
    factor = replace(vae[0], model=FactorVAEModelConfig(**{**vars(vae[0].model), "kind": "factor_vae"}))
    other_lr = replace(vae[0], lr=1e-4, seed=9)
    assert ensemble_key(vae[0]) == ensemble_key(vae[1]) != ensemble_key(other_lr)
    assert ensemble_key(factor) is None and ensemble_key(replace(vae[0], compile=True)) is None
    configs = [vae[0], factor, vae[1], other_lr, vae[2]]
    assert ensemble_groups(configs, 8) == [[0, 2, 4], [1], [3]]
    assert ensemble_groups(configs, 2) == [[0, 2], [1], [3], [4]]
    assert ensemble_groups(configs, 1) == [[0], [1], [2], [3], [4]]
    with pytest.raises(ValueError, match="ensemble size 0"):
        ensemble_groups(configs, 0)
    with pytest.raises(ValueError, match="differ only in seed and beta"):
        train_ensemble([vae[0], other_lr], ["a", "b"], device="cpu", progress=False)


def test_the_store_trains_members_by_step_and_reuses_them(tmp_path, one_torch_thread):
    configs = members("deconv")
    store = tmp_path / "store"
    runs.get_or_train(configs[0], store, device="cpu", progress=False)          # finished alone
    partial = runs.run_dir(configs[1], store)
    train(replace(configs[1], steps=5), partial, device="cpu", progress=False)   # killed at step 5
    relabel(partial, configs[1])
    first = get_or_train_ensemble(configs + [configs[2]], store, device="cpu", progress=False)
    assert [r["reused"] for r in first] == [True, False, False, True]
    assert all(load_checkpoint(runs.run_dir(c, store) / CHECKPOINT)["step"] == 12 for c in configs)
    assert all((runs.run_dir(c, store) / "config.json").exists() for c in configs)
    again = get_or_train_ensemble(configs, store, device="cpu", progress=False)
    assert all(r["reused"] for r in again)
    assert torch.equal(params(first[2]["model"]), params(again[2]["model"]))


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_sweep_trains_ensembles_in_process_and_on_workers(tmp_path, jobs, one_torch_thread):
    configs = members("deconv", steps=8) + [tiny_config(steps=8, lr=5e-4)]  # the last trains alone
    store = tmp_path / "store"
    results = run_sweep(configs, jobs=jobs, store=store, device="cpu", progress=False, ensemble=2,
                        evaluate=weight_sum)
    assert [r["reused"] for r in results] == [False] * 4
    ensembles = [r["history"][-1].get("ensemble") for r in results]
    assert ensembles == [2, 2, None, None]  # groups of at most 2: the third VAE run alone
    for result in results:  # each run evaluated once, on its own final weights
        assert result["evaluation"]["weights"] == weight_sum({**result, "store": str(store)})["weights"]
    again = run_sweep(configs, jobs=jobs, store=store, device="cpu", progress=False, ensemble=2)
    assert all(r["reused"] for r in again)
    for a, b in zip(results, again):
        assert torch.equal(params(a["model"]), params(b["model"]))


def test_longer_members_continue_shorter_ones_as_one_ensemble(tmp_path, one_torch_thread):
    configs = members("sb")
    store = tmp_path / "store"
    get_or_train_ensemble([replace(c, steps=8) for c in configs], store, device="cpu", progress=False)
    continued = get_or_train_ensemble(configs, store, device="cpu", progress=False)
    assert all(r["continued_from"] == 8 and not r["reused"] for r in continued)
    uninterrupted = train_ensemble(configs, [tmp_path / f"u{k}" for k in range(3)], device="cpu", progress=False)
    for a, b in zip(continued, uninterrupted):
        assert torch.equal(params(a["model"]), params(b["model"]))
        assert losses(a["history"]) == losses(b["history"])


def test_runs_at_different_steps_are_refused_together(tmp_path, one_torch_thread):
    configs = members("deconv")[:2]
    directories = [tmp_path / "a", tmp_path / "b"]
    train(replace(configs[0], steps=4), directories[0], device="cpu", progress=False)
    relabel(directories[0], configs[0])
    with pytest.raises(RuntimeError, match=r"stand at different steps \(4, 0\)"):
        train_ensemble(configs, directories, device="cpu", progress=False)
