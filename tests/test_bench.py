"""``python -m dvae_core.bench``: the quick CLI run, the arithmetic, the page, and bad names."""

from __future__ import annotations

import json
import time
from pathlib import Path

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

from dvae_core import bench, bench_report  # noqa: E402
from dvae_core.cli import run_main  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _positive_rates(lever: dict) -> None:
    for option, result in lever["options"].items():
        assert "error" not in result, (option, result)
        if "skipped" not in result:
            assert result["images_per_s"] > 0, (option, result)


@pytest.fixture
def one_thread():
    """One torch thread, as the book's runs use: two threads on cores other processes are busy with spin
    and slow every step down many times (the threads lever still measures 2)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_quick_cli_measures_every_model(tmp_path, capsys, one_thread):
    out, page = tmp_path / "bench.json", tmp_path / "page"
    code = bench.main(["--profiles", "smoke", "--quick", "--output", str(out), "--page-dir", str(page)])
    assert code == 0
    assert capsys.readouterr().out.strip() == str(out)  # progress goes to stderr, the path to stdout

    results = json.loads(out.read_text())
    assert results["complete"] and results["quick"] and results["schema"] == bench.SCHEMA
    assert {"torch", "cpu_count", "threads", "device"} <= results["machine"].keys()
    assert results["machine"]["threads"] == 1
    assert results["created"] and results["settings"]["steps"] == {"smoke": bench.QUICK.steps}
    records = results["records"]
    assert [r["model"] for r in records] == list(bench.MODELS) and {r["profile"] for r in records} == {"smoke"}
    for r in records:
        assert "error" not in r, r
        for key in ("loop_images_per_s", "bare_images_per_s", "data_images_per_s", "consumption_images_per_s"):
            assert r[key] > 0, (r["model"], key, r[key])
        assert r["loop_steps"] == r["steps"] == bench.QUICK.steps and r["warmup"] == bench.QUICK.warmup
        assert r["overhead"] == pytest.approx(1 - r["loop_images_per_s"] / r["bare_images_per_s"])
        assert 0 <= r["loop_data_fraction"] < 1 and r["parameters"] > 0
        assert set(r["levers"]) == {"threads", "channels_last", "compile", "allocator", "eval_context", "encode_batch"}
        for name, lever in r["levers"].items():
            if name not in ("compile", "allocator"):
                _positive_rates(lever)
        assert r["levers"]["compile"]["options"]["compiled"] == {"skipped": "quick mode"}
        assert r["levers"]["allocator"]["options"]["glibc default"] == {"skipped": "quick mode"}
    factor = next(r for r in records if r["model"] == "factor_vae")
    assert factor["consumption_images_per_s"] == pytest.approx(2 * factor["loop_images_per_s"])  # two batches a step

    fragment = (page / bench_report.PAGE_FRAGMENT).read_text()
    assert (page / bench_report.PAGE_FIGURE).read_bytes().startswith(b"\x89PNG")
    assert all(f"| {label} | `smoke` |" in fragment for label, _, _ in bench.MODELS.values())
    assert "```{warning}" in fragment  # quick numbers are flagged as such


def test_overhead_arithmetic():
    assert bench.overhead(90.0, 100.0) == pytest.approx(0.10)
    assert bench.overhead(110.0, 100.0) == pytest.approx(-0.10)  # a loop faster than the bare step: noise
    split = bench.overhead_split(80.0, 100.0, data_fraction=0.2)
    assert split["overhead"] == pytest.approx(0.2) and split["overhead_excluding_data"] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="positive"):
        bench.overhead(1.0, 0.0)
    # windows after warm-up step 2: 2 steps of 10 images in 1 s (half of it making data), then 1 step in 1 s
    history = [{"step": 2, "images_per_s": 1.0, "data_fraction": 0.9},
               {"step": 4, "images_per_s": 20.0, "data_fraction": 0.5},
               {"step": 5, "images_per_s": 10.0, "data_fraction": 0.0}]
    rate = bench.loop_rate(history, batch_size=10, warmup=2)
    assert rate == pytest.approx({"images_per_s": 15.0, "data_fraction": 0.25, "steps": 3, "seconds": 2.0})
    with pytest.raises(RuntimeError, match="no logged window"):
        bench.loop_rate(history[:1], 10, 2)
    lever = {"baseline": "1", "candidate": "2", "options": {"1": {"images_per_s": 50.0}, "2": {"images_per_s": 75.0}}}
    assert bench_report.speedup(lever) == pytest.approx(1.5) and bench_report.lever_cell(lever) == "×1.50"
    assert bench_report.speedup({"baseline": "a", "candidate": "b", "options": {"a": {"images_per_s": 1.0},
                                                                        "b": {"error": "x"}}}) is None


def _record(model: str, label: str, profile: str, loop: float, bare: float, **levers) -> dict:
    def lever(base: str, candidate: str, rates: dict) -> dict:
        return {"baseline": base, "candidate": candidate,
                "options": {k: v if isinstance(v, dict) else {"images_per_s": v} for k, v in rates.items()}}

    record = {"model": model, "label": label, "profile": profile, "batch_size": 32, "image_shape": [3, 32, 32],
              "parameters": 12345, "steps": 10, "warmup": 2, "loop_images_per_s": loop, "bare_images_per_s": bare,
              "loop_data_fraction": 0.05, "data_images_per_s": 5000.0, "consumption_images_per_s": loop,
              "data_headroom": 5000.0 / loop, **bench.overhead_split(loop, bare, 0.05)}
    record["levers"] = {
        "threads": lever("1", "2", {"1": 100.0, "2": 180.0}),
        "channels_last": lever("contiguous", "channels_last", {"contiguous": bare, "channels_last": 0.9 * bare}),
        "compile": lever("eager", "compiled", {"eager": bare, "compiled": levers.get("compiled", 1.2 * bare)}),
        "allocator": lever("glibc default", "keep_freed_memory", {"glibc default": 0.8 * bare, "keep_freed_memory": bare}),
        "eval_context": lever("plain", "inference_mode", {"plain": 1000.0, "no_grad": 1500.0, "inference_mode": 1600.0}),
        "encode_batch": lever("64", "1024", {"64": 800.0, "1024": 1600.0}),
    }
    return record


def hand_made_results() -> dict:
    return {
        "schema": 1, "created": "2025-01-01T00:00:00+00:00", "complete": True, "quick": False, "overhead_goal": 0.1,
        "machine": {"torch": "2.x", "cpu_count": 2, "cpus_available": 2, "processor": "test CPU", "threads": 2,
                    "device": "cpu", "load_average_start": [0.1, 0.1, 0.1]},
        "settings": {"models": ["sb_vae", "rae", "vlae"], "profiles": ["preview", "paper"], "warmup": 2,
                     "steps": {"preview": 40, "paper": 8}, "encode_batches": [64, 1024]},
        "records": [
            _record("sb_vae", "SB-VAE", "preview", 950.0, 1000.0),
            _record("rae", "RAE", "preview", 700.0, 1000.0, compiled={"error": "BackendCompilerFailed: no | cc"}),
            _record("sb_vae", "SB-VAE", "paper", 19.0, 20.0, compiled={"images_per_s": 30.0, "compile_seconds": 42.0}),
            {"model": "vlae", "label": "VLAE", "profile": "paper", "error": "FileNotFoundError: no Fashion-MNIST"},
        ],
    }


def test_markdown_and_figure_from_hand_made_results(tmp_path):
    results = hand_made_results()
    md = bench_report.bench_markdown(results)
    assert md.startswith(bench_report.FRAGMENT_HEADER)
    assert "| SB-VAE | `preview` | 32×32×3, batch 32 | 12,345 | 950 | 1,000 | 5.0 % | 5.0 % | 0.0 % |" in md
    assert "**30.0 %** (goal ≤ 10 %)" in md  # the RAE's loop misses the goal
    assert "| VLAE | `paper` | failed: FileNotFoundError: no Fashion-MNIST |" in md
    assert "failed: BackendCompilerFailed: no / cc" in md  # a '|' in an error cannot break the table
    assert "| ×1.80 | ×0.90 | ×1.20 | ×1.25 | ×1.60 | ×1.50 | 1024 vs 64: ×2.00 |" in md
    assert "42 s (SB-VAE, paper)" in md and "{figure} /book/_generated/bench.png" in md
    assert "warning" not in md and "Not yet measured" not in md

    fig = bench_report.bench_figure(results)
    assert len(fig.axes) == 4  # (throughput, levers) × (preview, paper)
    assert [ax.get_title() for ax in fig.axes[:2]] == ["profile preview", "profile paper"]
    matplotlib.pyplot.close(fig)

    written = bench_report.write_page(results, tmp_path)
    assert [p.name for p in written] == [bench_report.PAGE_FRAGMENT, bench_report.PAGE_FIGURE]
    assert (tmp_path / bench_report.PAGE_FIGURE).read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / bench_report.PAGE_FRAGMENT).read_text() == md

    # no results: the page still builds, says so, and shows no stale figure
    assert "**Not yet measured.**" in bench_report.bench_markdown(None)
    assert bench_report.write_page(None, tmp_path) == [tmp_path / bench_report.PAGE_FRAGMENT]
    assert not (tmp_path / bench_report.PAGE_FIGURE).exists()
    assert "{figure}" not in (tmp_path / bench_report.PAGE_FRAGMENT).read_text()


def test_unknown_model_or_profile_names_the_choices(capsys):
    with pytest.raises(ValueError, match="unknown model 'nope': choose from sb_vae, deconv_vae, factor_vae, rae, vlae"):
        bench.parse_names("sb_vae,nope", bench.MODELS, "model", bench.MODELS)
    with pytest.raises(ValueError, match="unknown profile 'huge': choose from smoke, preview, paper"):
        bench.main(["--profiles", "preview,huge"])
    with pytest.raises(ValueError, match="unknown model 'vae'"):
        bench.bench_config("vae", "preview")
    with pytest.raises(ValueError, match="unknown profile 'big'"):
        bench.bench_config("rae", "big")
    assert run_main(bench.main, ["--models", "bogus", "--output", "/nonexistent/x.json"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown model 'bogus'") and "vlae" in err and "Traceback" not in err
    assert bench.parse_names("all", bench.MODELS, "model", ()) == tuple(bench.MODELS)
    assert bench.parse_names(None, ("a", "b"), "x", ("b",)) == ("b",)
    assert run_main(bench.main, ["--steps", "0"]) == 2


def test_configs_are_the_books():
    from dvae_core.papers import rae, sbd, vlae

    p = sbd.profile("paper")
    assert bench.bench_config("sb_vae", "paper") == sbd.comparison_config(p, "sb", p.seeds[0])
    assert bench.bench_config("deconv_vae", "preview").model.decoder == "deconv"
    assert bench.bench_config("factor_vae", "paper").model.kind == "factor_vae"
    assert bench.bench_config("rae", "preview") == rae.run_config(rae.profile("preview"), "rae")
    assert bench.bench_config("vlae", "paper") == vlae.run_config(vlae.profile("paper"), "vlae")


def test_compile_lever_failure_or_timeout_is_recorded(monkeypatch, capsys, one_thread):
    def broken(fn, **kwargs):
        raise RuntimeError("no C++ compiler\nmore")

    monkeypatch.setattr(torch, "compile", broken)  # the worker, in this process: the error is its result
    assert bench.main(["--compile-worker", "--models", "deconv_vae", "--profiles", "smoke", "--steps", "1",
                       "--warmup", "1", "--device", "cpu"]) == 0
    line = capsys.readouterr().out.strip()
    assert line == bench.WORKER_MARK + json.dumps({"error": "RuntimeError: no C++ compiler"})

    start = time.perf_counter()  # a child that is not done in time is killed (it has not even imported torch)
    assert bench.worker_in_subprocess("deconv_vae", "smoke", 1, 1, "cpu", timeout=0.2) == {
        "error": "took longer than 0.2 s (stopped)"}
    assert time.perf_counter() - start < 5
    crashed = bench.worker_in_subprocess("nope", "smoke", 1, 1, "cpu", timeout=120)
    assert crashed["error"].startswith("compile worker exited with status 2: error: unknown model 'nope'")


def test_committed_fragment_matches_results():
    """book/_generated/bench.md is what the bench makes of results/bench.json (or "not yet measured")."""
    results = bench_report.load_results()
    committed = ROOT / "book" / "_generated" / bench_report.PAGE_FRAGMENT
    assert committed.exists() and committed.read_text() == bench_report.bench_markdown(results), (
        "book/_generated/bench.md is stale: regenerate with `.venv/bin/python -m dvae_core.bench --render-only`")
    if results and "{figure}" in committed.read_text():
        assert (committed.parent / bench_report.PAGE_FIGURE).exists()


def test_allocator_lever_measures_glibc_defaults_in_a_fresh_process(one_thread):
    """The child never calls keep_freed_memory, so it times the bare step with glibc's own settings."""
    default = bench.worker_in_subprocess("deconv_vae", "smoke", 1, 2, "cpu", timeout=120, worker="default-allocator")
    assert default["images_per_s"] > 0, default
    crashed = bench.worker_in_subprocess("nope", "smoke", 1, 1, "cpu", timeout=120, worker="default-allocator")
    assert crashed["error"].startswith("default-allocator worker exited with status 2: error: unknown model 'nope'")


def test_multi_run_cli_times_three_ways_and_renders_the_choice(tmp_path, capsys):
    out, page = tmp_path / "multi_run.json", tmp_path / "page"
    code = bench.main(["--multi-run", "--profiles", "smoke", "--runs", "2", "--steps", "5", "--jobs", "2",
                       "--output", str(out), "--page-dir", str(page)])
    assert code == 0 and capsys.readouterr().out.strip() == str(out)
    record = json.loads(out.read_text())
    assert set(record["results"]) == {"deconv", "sb"} and record["runs_per_model"] == 2 and record["steps"] == 5
    for ways in record["results"].values():
        assert list(ways) == list(bench.MULTI_RUN_WAYS)
        assert all(m["images_per_s"] > 0 and m["steady_images_per_s"] > 0 for m in ways.values())
        processes = ways["processes"]
        assert processes["steady_speedup"] == pytest.approx(
            processes["steady_images_per_s"] / ways["alone"]["steady_images_per_s"], abs=0.01)
    ensemble_wins = all(w["ensemble"]["steady_images_per_s"] > w["processes"]["steady_images_per_s"]
                        for w in record["results"].values())
    assert record["choice"] == ("ensemble" if ensemble_wins else "processes")
    fragment = (page / bench_report.MULTI_RUN_FRAGMENT).read_text()
    assert "| DeConv-VAE |" in fragment and "| SB-VAE |" in fragment and "one ensemble of 2" in fragment
    assert ("`DVAE_ENSEMBLE` at 1" in fragment) == (record["choice"] == "processes")


def test_an_unmeasured_multi_run_says_how_to_measure_it():
    assert "python -m dvae_core.bench --multi-run" in bench_report.multi_run_markdown(None)


def test_the_multi_run_fragment_adds_the_gpu_device_checks_measurement(tmp_path):
    ways = {"alone": {"steady_images_per_s": 1000.0, "images_per_s": 900.0, "steady_speedup": 1.0},
            "processes": {"steady_images_per_s": 3000.0, "images_per_s": 1200.0, "steady_speedup": 3.0},
            "ensemble": {"steady_images_per_s": 12000.0, "images_per_s": 11000.0, "steady_speedup": 12.0,
                         "max_weight_difference": 2e-3, "mean_weight_difference": 3e-6, "max_loss_difference": 4e-5}}
    gpu = {"machine": {"gpu": "NVIDIA H100"}, "results": {"sb": ways, "deconv": ways}, "choice": "ensemble",
           "faster_by_model": {"sb": "ensemble", "deconv": "ensemble"}, "jobs": 8, "runs_per_model": 16,
           "steps": 200, "batch_size": 16, "profile": "preview"}
    (tmp_path / "gpu.json").write_text(json.dumps(gpu))
    cpu = {**gpu, "machine": {"processor": "a CPU", "cpus_available": 2, "threads": 2}, "choice": "processes",
           "faster_by_model": {"sb": "processes", "deconv": "processes"}, "created": "2026-12-08T03:00:00+00:00"}
    text = bench_report.write_multi_run_page(cpu, tmp_path, gpu_record=tmp_path / "gpu.json").read_text()
    cpu_part, gpu_part = text.split("On a GPU, by the device check")
    assert "Measured 2026-12-08 on a CPU, 2 cores" in cpu_part and "`DVAE_ENSEMBLE` at 1" in cpu_part
    assert "on one NVIDIA H100" in gpu_part and "one ensemble is faster than processes for every model" in gpu_part
    assert "| SB-VAE | 1,000 [900] | 3,000 (×3.00) [1,200] | 12,000 (×12.00) [11,000] |" in gpu_part
    assert "losses differ by at most 4.0e-05 (relative), their weights by 3.0e-06 on average and 2.0e-03" in gpu_part
    alone = bench_report.write_multi_run_page(cpu, tmp_path, gpu_record=tmp_path / "none.json").read_text()
    assert "On a GPU" not in alone


def test_the_committed_multi_run_fragment_is_rendered_from_the_committed_results(tmp_path):
    record = bench_report.load_results(bench_report.MULTI_RUN_OUTPUT)
    assert record is not None, "results/multi_run.json is missing: python -m dvae_core.bench --multi-run"
    rendered = bench_report.write_multi_run_page(record, tmp_path).read_text()
    committed = ROOT / "book" / "_generated" / bench_report.MULTI_RUN_FRAGMENT
    assert committed.read_text() == rendered, "stale: python -m dvae_core.bench --render-only"
