"""Runs that share an architecture, trained together as one vectorised model (issue 18).

On a GPU, one preview model at batch 16 or 64 leaves most of the chip idle: its step is bound by kernel
launches, not arithmetic. ``K`` runs of one architecture (seeds, β) stacked into one model with ``torch.func``
(``stack_module_state`` + ``vmap``) launch one run's kernels for all ``K``. Each member stays an ordinary run of
the store:

- its own initialisation (its model is built after seeding torch with its seed, as :func:`~dvae_core.train.train`
  builds it), its own data stream (its numpy generator draws its factors; the ``K`` batches are rendered in one
  call) and its own reparameterisation noise (drawn from a generator in the state the run alone would draw it
  from, and handed to :meth:`VAE.loss <dvae_core.models.vae.VAE.loss>`);
- its own checkpoint in its own run folder, in :func:`~dvae_core.train.train`'s format, so that ``train`` resumes
  a member alone and an ensemble resumes members that ``train`` wrote; the same loop
  (:func:`dvae_core.train.train_runs`): atomic saves, NaN guard (naming the member, the step and the term),
  snapshots;
- its own history rows, with the same keys (``images_per_s`` is the member's; ``ensemble`` says how many
  trained together).

A member equals the run trained alone within float tolerance, not bit for bit: under ``vmap`` the ``K``
convolutions become one grouped convolution and the ``K`` matrix products one batched product, which sum in
another order (``tests/test_ensemble.py`` bounds the difference after a few steps; it then grows with the
steps, as any rounding difference does under Adam, which moves a weight whose gradient is near zero by about
the learning rate either way: ``python -m dvae_core.bench --multi-run`` measures it). Adam and Adamax are
elementwise, so one optimiser over the stacked parameters is ``K`` optimisers. A killed ensemble resumes bit
for bit, since it repeats the same stacked computation.

Which runs may share: :func:`ensemble_key`. VAE runs whose recipes differ only in seed and β; other model
kinds (FactorVAE's discriminator, RAE, VLAE, InfoWGAN-GP) and compiled runs train alone.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from dvae_core import runs
from dvae_core.train import (CHECKPOINT, TrainableModel, TrainConfig, build_dataset, build_model, check_model_fits_data,
                             data_image_shape, load_checkpoint, load_weights, make_optimizer, model_kind,
                             numeric_precision, prepare_training, run_label, train, train_runs)


def ensemble_key(config: TrainConfig) -> str | None:
    """Runs with equal keys can train as one ensemble: the recipe without its seed and β. None: the run trains
    alone (a model kind other than the VAE, or ``compile``)."""
    if model_kind(config) != "vae" or config.compile:
        return None
    return replace(config, seed=0, beta=0.0).canonical()


def ensemble_groups(configs: Iterable[TrainConfig], size: int) -> list[list[int]]:
    """Indices of ``configs`` in groups that train together: runs of one :func:`ensemble_key`, at most ``size``
    to a group, in input order; every other run alone. ``size`` 1 puts every run alone."""
    if size < 1:
        raise ValueError(f"ensemble size {size}: use 1 (every run alone) or more")
    groups: list[list[int]] = []
    open_group: dict[str, list[int]] = {}
    for i, config in enumerate(configs):
        key = ensemble_key(config) if size > 1 else None
        if key is None:
            groups.append([i])
            continue
        group = open_group.get(key)
        if group is None or len(group) == size:
            group = open_group[key] = []
            groups.append(group)
        group.append(i)
    return groups


class _Loss(nn.Module):
    """A model whose forward is its loss, for ``functional_call`` (which calls forward)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, beta: torch.Tensor, noise: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.model.loss(x, beta=beta, noise=noise)


def _noise_generator(config: TrainConfig, device: torch.device) -> torch.Generator:
    """The generator the run alone draws its noise from, in its state after the model was built: torch's CPU
    generator (the model's initialisation has just drawn from it), or the device's, which seeding set and the
    initialisation on the CPU left alone."""
    if device.type == "cpu":
        generator = torch.Generator()
        generator.set_state(torch.get_rng_state())
    else:
        generator = torch.Generator(device=device)
        generator.manual_seed(config.seed)
    return generator


class StackedRuns:
    """``K`` VAE runs as one model (:class:`dvae_core.train.Runs`): each built from its seed as ``train`` builds
    it, then their parameters stacked (``stack_module_state``) and trained by one optimiser through ``vmap``."""

    def __init__(self, configs: list[TrainConfig], device: torch.device):
        self.configs, self.device = configs, device
        self.label = f"{len(configs)} × {run_label(configs[0])} s{configs[0].seed}…"
        self.members, self.generators = [], []
        for config in configs:
            torch.manual_seed(config.seed)
            self.members.append(build_model(config).to(device))
            self.generators.append(_noise_generator(config, device))
        self.optimizer_states: list[dict | None] = [None] * len(configs)

    def load_weights(self, k: int, weights: dict[str, torch.Tensor], path: Path, fix: str) -> None:
        load_weights(self.members[k], weights, path, fix)

    def load_state(self, k: int, state: dict[str, Any]) -> None:
        if self.device.type == "cpu":
            self.generators[k].set_state(state["torch_rng"])
        elif "device_rng" in state:
            self.generators[k].set_state(state["device_rng"])
        self.optimizer_states[k] = state["optimizer"]

    def start(self) -> None:
        wrappers = [_Loss(m) for m in self.members]
        self.params, self.buffers = stack_module_state(wrappers)
        base = copy.deepcopy(wrappers[0]).to("meta")

        def member_terms(p, b, x, beta, noise):
            return functional_call(base, (p, b), (x, beta, noise))

        self.terms_of = vmap(member_terms)
        self.optimizer = make_optimizer(self.configs[0], list(self.params.values()))
        if self.optimizer_states[0] is not None:
            self.optimizer.load_state_dict(_stacked_optimizer_state(self.optimizer_states))
        self.betas = torch.tensor([c.beta for c in self.configs], device=self.device)

    def step(self, draw, step: int) -> dict[str, torch.Tensor]:
        x = draw()
        latent_dim = self.configs[0].model.latent_dim
        noise = torch.stack([torch.randn((x.shape[1], latent_dim), generator=g, device=self.device)
                             for g in self.generators])
        with numeric_precision(self.configs[0].precision, self.device):
            terms = self.terms_of(self.params, self.buffers, x, self.betas, noise)
        self.optimizer.zero_grad(set_to_none=True)
        terms["loss"].sum().backward()  # member k's parameters get member k's gradient only
        self.optimizer.step()
        return terms

    def state(self, k: int) -> dict[str, Any]:
        noise_state = self.generators[k].get_state()
        on_cpu = self.device.type == "cpu"
        return {"model": self.weights(k), "optimizer": _member_optimizer_state(self.optimizer.state_dict(), k),
                "torch_rng": noise_state if on_cpu else torch.get_rng_state(),
                **({} if on_cpu else {"device_rng": noise_state})}

    def weights(self, k: int) -> dict[str, torch.Tensor]:
        stacked = {**self.buffers, **self.params}
        return {name: stacked["model." + name][k].detach().clone() for name in self.members[k].state_dict()}

    def models(self) -> list[TrainableModel]:
        for k, model in enumerate(self.members):
            model.load_state_dict(self.weights(k))
        return [model.eval() for model in self.members]


def _member_optimizer_state(state: dict, k: int) -> dict:
    """Member ``k``'s slice of the stacked optimiser's ``state_dict``: what its run alone would have saved."""
    sliced = {i: {name: (value.clone() if value.ndim == 0 else value[k].clone()) for name, value in slots.items()}
              for i, slots in state["state"].items()}
    return {"state": sliced, "param_groups": copy.deepcopy(state["param_groups"])}


def _stacked_optimizer_state(states: list[dict]) -> dict:
    """The members' optimiser ``state_dict``\\ s as one over the stacked parameters (all at one step)."""
    first = states[0]
    if any(s["state"].keys() != first["state"].keys() for s in states):
        raise RuntimeError("the runs' checkpoints hold optimiser states of different parameters, so they cannot "
                           "resume as one ensemble: train them alone, or delete their run folders to retrain")
    stacked = {i: {name: (value.clone() if value.ndim == 0 else torch.stack([s["state"][i][name] for s in states]))
                   for name, value in slots.items()} for i, slots in first["state"].items()}
    return {"state": stacked, "param_groups": copy.deepcopy(first["param_groups"])}


def train_ensemble(configs: list[TrainConfig], run_dirs: list[Path | str], device: str = "auto",
                   progress: bool | None = None, dataset=None) -> list[dict[str, Any]]:
    """Train (or resume) the runs ``configs`` as one ensemble, member ``k`` in ``run_dirs[k]``, through the book's
    one training loop (:func:`dvae_core.train.train_runs`); one :func:`~dvae_core.train.train` result per member
    (``model`` in eval mode, ``history``, ``config``). The members must share :func:`ensemble_key` and, where
    they have checkpoints, stand at one step."""
    if not configs or len(configs) != len(run_dirs):
        raise ValueError("train_ensemble needs one run folder per config, and at least one config")
    keys = {ensemble_key(c) for c in configs}
    if None in keys or len(keys) != 1:
        raise ValueError("an ensemble's runs must be VAE runs whose recipes differ only in seed and beta "
                         "(ensemble_key); train the others alone")
    first = configs[0]
    if len(configs) == 1:  # an ensemble of one is the run alone, bit for bit
        return [train(first, run_dirs[0], device=device, progress=progress, dataset=dataset)]
    run_dirs = [Path(d) for d in run_dirs]
    dataset, dev = prepare_training(first, run_dirs, device, dataset)
    return train_runs(configs, run_dirs, StackedRuns(configs, dev), dataset, dev, progress)


def get_or_train_ensemble(configs: list[TrainConfig], store: Path | None = None, device: str = "auto",
                          progress: bool | None = None) -> list[dict[str, Any]]:
    """:func:`dvae_core.runs.get_or_train` for runs of one :func:`ensemble_key`: finished runs are loaded, the
    others trained together (each resumed from its checkpoint, or continued from a finished shorter run as
    ``get_or_train`` does); members standing at different steps train in one ensemble per step. One result
    per config, in order, with ``reused`` and ``continued_from`` as ``get_or_train`` sets them."""
    configs = list(configs)
    results: list[dict[str, Any] | None] = [None] * len(configs)
    todo, todo_hashes = [], set()
    for i, config in enumerate(configs):
        done = runs.load_run(config, store, device)
        if done is not None:
            results[i] = {**done, "reused": True}
        elif runs.config_hash(config) not in todo_hashes:
            todo.append(i)
            todo_hashes.add(runs.config_hash(config))
    if todo:
        dataset = build_dataset(configs[todo[0]])
        check_model_fits_data(configs[todo[0]], data_image_shape(dataset))
        directories = {i: runs.run_dir(configs[i], store) for i in todo}
        with contextlib.ExitStack() as locks:
            for i in sorted(todo, key=lambda i: directories[i].name):  # one order: two sweeps cannot deadlock
                locks.enter_context(runs.run_lock(directories[i]))
            waiting = []
            for i in todo:
                done = runs.load_run(configs[i], store, device)  # finished by another process while we waited
                if done is not None:
                    results[i] = {**done, "reused": True}
                    continue
                runs.prepare_run(configs[i], directories[i], store)
                waiting.append(i)
            by_step: dict[int, list[int]] = {}
            for i in waiting:
                checkpoint = directories[i] / CHECKPOINT
                by_step.setdefault(load_checkpoint(checkpoint)["step"] if checkpoint.exists() else 0, []).append(i)
            for members in by_step.values():
                with runs.nothing_half_written([directories[i] for i in members]):
                    trained = train_ensemble([configs[i] for i in members], [directories[i] for i in members],
                                             device=device, progress=progress, dataset=dataset)
                for i, result in zip(members, trained):
                    results[i] = {**result, "reused": False, "continued_from": runs.continued_from(directories[i])}
    for i, config in enumerate(configs):  # a duplicate of a run trained above
        if results[i] is None:
            results[i] = {**runs.load_run(config, store, device), "reused": True}
    return results
