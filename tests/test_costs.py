"""The cost of one more replicate: measured CPU time, estimated GPU time."""

import math

import pytest

from dvae_core import costs
from dvae_core.papers import sbd


def test_replicate_cost_adds_its_runs_and_averages_over_replicates():
    p = sbd.profile("smoke")
    config = sbd.fig2_config(p, "deconv", 0)
    run = {"config": config, "history": [{"images_per_s": 100.0}, {"images_per_s": 80.0}, {"images_per_s": 80.0}]}
    one = costs.replicate_cost([run])
    # the first logged window (warm-up) is left out of the rate: 20 steps × 16 images at 80 images/s
    assert one.cpu_seconds == pytest.approx(config.steps * config.batch_size / 80.0)
    assert one.gpu_seconds >= config.steps * costs.GPU_STEP_SECONDS
    two = costs.mean_replicate_cost([run, run, run, run], replicates=2)
    assert two.cpu_seconds == pytest.approx(2 * one.cpu_seconds) and two.gpu_seconds == pytest.approx(2 * one.gpu_seconds)


def test_a_run_without_history_has_unknown_cpu_cost():
    config = sbd.fig2_config(sbd.profile("smoke"), "sb", 0)
    assert math.isnan(costs.replicate_cost([{"config": config, "history": []}]).cpu_seconds)  # unknown, never 0
