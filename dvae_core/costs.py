"""What one more replicate of a claim costs: CPU time measured here, GPU time estimated.

The CPU seconds of a run are its training images over its measured rate (the median images/s of its
logged windows, :func:`dvae_core.train.throughput`), so they are this machine's, under the load it had.
No GPU has trained these runs yet (the GPU path is its own issue), so the GPU seconds are an
estimate, stated as one: the run's counted FLOPs (:func:`dvae_core.sweep.estimated_flops`) at
:data:`GPU_FLOPS`, and never less than :data:`GPU_STEP_SECONDS` per optimiser step, since at these
small batches a GPU step is bound by kernel launches, not arithmetic.
"""

from __future__ import annotations

from typing import Iterable

from dvae_core.rules import Cost
from dvae_core.train import TrainConfig, throughput

GPU_FLOPS = 20e12        # sustained FLOP/s assumed for these small conv nets on one H100/H200 (TF32)
GPU_STEP_SECONDS = 4e-3  # assumed floor per training step (launch-bound at batch 16–64)


def run_cpu_seconds(run: dict) -> float:
    config: TrainConfig = run["config"]
    rate = throughput(run.get("history") or [])
    return config.steps * config.batch_size / rate if rate and rate > 0 else float("nan")


def step_flops(config: TrainConfig, _cache: dict = {}) -> float:  # noqa: B006 (a per-process cache)
    """The FLOPs of one training step of ``config`` (:func:`dvae_core.sweep.estimated_flops`), counted once
    per architecture and batch: the seed and the length of a run do not change them."""
    from dataclasses import replace

    from dvae_core.sweep import estimated_flops

    one_step = replace(config, seed=0, steps=1, checkpoint_every=1, log_every=1, snapshot_every=None)
    key = one_step.canonical()
    if key not in _cache:
        _cache[key] = estimated_flops(one_step)
    return _cache[key]


def run_gpu_seconds(config: TrainConfig) -> float:
    """The estimated GPU seconds of a run: its FLOPs at :data:`GPU_FLOPS`, or the launch-bound floor of
    :data:`GPU_STEP_SECONDS` per step if that is longer."""
    return max(step_flops(config) * config.steps / GPU_FLOPS, config.steps * GPU_STEP_SECONDS)


def replicate_cost(runs: Iterable[dict]) -> Cost:
    """The cost of one replicate made of ``runs`` (e.g. the two runs of a seed pair, averaged over pairs
    by the caller or given as one pair): the sum of their CPU and GPU seconds."""
    runs = list(runs)
    return Cost(cpu_seconds=float(sum(run_cpu_seconds(r) for r in runs)),
                gpu_seconds=float(sum(run_gpu_seconds(r["config"]) for r in runs)))


def mean_replicate_cost(runs: Iterable[dict], replicates: int) -> Cost:
    """The cost of one replicate when ``runs`` make up ``replicates`` of them (a whole sweep, say)."""
    total = replicate_cost(runs)
    k = max(1, int(replicates))
    return Cost(total.cpu_seconds / k, total.gpu_seconds / k)
