"""The GPU device check (scripts/device_check.py) at its CI size: every check runs, decides by the book's
rules and writes its results, and bad input is one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "device_check.py"
VERDICTS = {"reproduced", "not reproduced", "inconclusive"}


def run_check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=900)


@pytest.fixture(scope="module")
def device_check_tiny(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("device_check")
    done = run_check("--scale", "tiny", "--out", str(out), "--jobs", "2", "--device", "cpu")
    assert done.returncode == 0, done.stderr[-2000:]
    return out


def test_every_check_writes_its_claims_table_and_sizes(device_check_tiny):
    summary = json.loads((device_check_tiny / "device_check.json").read_text())
    assert list(summary["checks"]) == ["multi_run", "sbd_fig2", "sbd_fig3", "fvae_tradeoff"]
    assert summary["device"] == "cpu" and summary["scale"] == "tiny" and summary["seed_offset"] == 5000
    expected = {"sbd_fig2": {"sbd-fig2-mig", "sbd-fig2-reconstruction"},
                "sbd_fig3": {"sbd-fig3-mig", "sbd-fig3-reconstruction"},
                "fvae_tradeoff": {"fvae-tradeoff-dsprites-metric", "fvae-tradeoff-dsprites-mig"}}
    for check, ids in expected.items():
        record = json.loads((device_check_tiny / f"{check}.json").read_text())
        assert {c["id"] for c in record["claims"]} == ids
        assert all(c["verdict"] in VERDICTS and c["rule"] for c in record["claims"])
        assert record["images_per_run"] == 12 * 16 and record["replicates"] == 2 and record["wall_seconds"] > 0
        assert len(record["table"]) == record["runs"]
        assert set(summary["checks"][check]["verdicts"]) == ids


def test_the_multi_run_measurement_times_three_ways_and_chooses(device_check_tiny):
    record = json.loads((device_check_tiny / "multi_run.json").read_text())
    summary = json.loads((device_check_tiny / "device_check.json").read_text())
    assert set(record["results"]) == {"deconv", "sb"} and record["runs_per_model"] == 2 and record["steps"] == 4
    for ways in record["results"].values():
        assert set(ways) == {"alone", "processes", "ensemble"}
        assert all(m["images_per_s"] > 0 and m["steady_images_per_s"] > 0 for m in ways.values())
        assert ways["alone"]["speedup"] == ways["alone"]["steady_speedup"] == 1.0
        member = ways["ensemble"]  # 4 steps on the CPU: float rounding only
        assert 0 <= member["mean_weight_difference"] <= member["max_weight_difference"] < 1e-4
        assert member["max_loss_difference"] < 1e-5
    faster = {d: max(("processes", "ensemble"), key=lambda w: ways[w]["steady_images_per_s"])
              for d, ways in record["results"].items()}
    assert record["faster_by_model"] == faster
    assert record["choice"] == ("ensemble" if set(faster.values()) == {"ensemble"} else "processes")
    assert summary["ensemble"] == (64 if record["choice"] == "ensemble" else 1)
    assert not list((device_check_tiny / "runs" / "multi_run").rglob("checkpoint.pt"))  # its stores are removed


def test_the_runs_go_to_the_output_folder_and_are_reused(device_check_tiny):
    stored = list((device_check_tiny / "runs").glob("*/checkpoint.pt"))
    assert len(stored) == 4 + 4 + 8  # two seed pairs twice, and the 2-seed × (2 β + 2 γ) smoke sweep
    again = run_check("--scale", "tiny", "--out", str(device_check_tiny), "--only", "sbd_fig2", "--device", "cpu")
    assert again.returncode == 0, again.stderr[-2000:]
    assert len(list((device_check_tiny / "runs").glob("*/checkpoint.pt"))) == len(stored)


@pytest.mark.parametrize("args,field", [(["--device", "tpu"], "--device"), (["--jobs", "0"], "--jobs"),
                                        (["--ensemble", "many"], "--ensemble")])
def test_bad_input_is_one_line_naming_the_field(tmp_path, args, field):
    done = run_check("--out", str(tmp_path / "out"), *args)
    assert done.returncode == 2 and done.stderr.startswith(f"error: {field}") and done.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_a_check_trains_its_runs_as_ensembles_when_told(tmp_path):
    from dvae_core.train import load_checkpoint

    out = tmp_path / "out"
    done = run_check("--scale", "tiny", "--out", str(out), "--only", "sbd_fig2", "--ensemble", "2", "--device", "cpu")
    assert done.returncode == 0, done.stderr[-2000:]
    checkpoints = list((out / "runs").glob("*/checkpoint.pt"))
    assert len(checkpoints) == 4  # two seed pairs, each decoder's two seeds one ensemble
    assert all(json.loads(load_checkpoint(c)["history"])[-1]["ensemble"] == 2 for c in checkpoints)
    assert json.loads((out / "device_check.json").read_text())["ensemble"] == 2
