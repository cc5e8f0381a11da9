"""The cost of reproduction, measured: ``python -m dvae_core.bench``.

For one representative run of every model family the book trains (SB-VAE, DeConv-VAE, FactorVAE,
RAE, VLAE), at the ``preview`` and ``paper`` sizes of the experiment modules' own config builders:

* **loop** — images/s of :func:`dvae_core.train.train` itself, over ``steps`` steps after ``warmup``
  warm-up steps (model and data set-up, warm-up and the final checkpoint excluded);
* **bare** — images/s of the same model's loss, backward and optimiser step (and FactorVAE's
  discriminator step) on pre-made batches in a tight loop: what the hardware allows;
* **overhead** — ``1 − loop / bare`` (goal: at most 10 %), split into the loop's data generation
  share and the rest (bookkeeping);
* **data** — images/s of ``dataset.sample`` alone, against the loop's consumption;
* **levers** — torch threads 1 vs 2, channels_last, ``torch.compile`` (in a child process killed after
  ``--compile-timeout`` seconds; a failure or a timeout is recorded as an error string, never raised),
  plain vs ``no_grad`` vs ``inference_mode`` encoding, the metric-encoding batch size
  (``encode_means`` with the book's 256 vs 1024 images per call), and glibc's allocator as the book sets
  it (:func:`~dvae_core.infra.keep_freed_memory`) against its defaults, which only a fresh child process
  still has;
* **many runs at once** (``--multi-run``, :func:`measure_multi_run`) — Fig. 2's models trained one after
  another, as ``--jobs`` processes and as one vectorised ensemble (:mod:`dvae_core.ensemble`), to
  ``results/multi_run.json`` and ``book/_generated/multi_run.md``; the device check measures the same on a GPU.

Results go to ``results/bench.json`` (atomically, after every record) and the book page
``book/cost.md`` includes what :func:`dvae_core.bench_report.write_page` makes of them (``book/_generated/bench.md`` and
``bench.png``). Progress goes to stderr; stdout gets the path of the results file.

    python -m dvae_core.bench                                  # preview and paper, every model
    python -m dvae_core.bench --profiles preview --models sb_vae,rae --steps 100
    python -m dvae_core.bench --render-only                    # the page from results/bench.json
    python -m dvae_core.bench --multi-run --profiles preview    # many runs at once: processes vs one ensemble
    python -m dvae_core.bench --profiles smoke --quick --output /tmp/b.json --no-page   # seconds
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from dvae_core.evaluate import ENCODE_BATCH
from dvae_core.profiles import PROFILES, check_profile
from dvae_core.infra import REPO_ROOT, atomic_write_text, keep_freed_memory, resolve_device
from dvae_core.bench_report import (DEFAULT_OUTPUT, GENERATED_DIR, MULTI_RUN_OUTPUT, OVERHEAD_GOAL, load_results,
                                   write_multi_run_page, write_page)
from dvae_core.papers import BenchModel, bench_models
from dvae_core.train import TrainConfig, build_dataset, build_model, make_optimizer, model_kind, train

SCHEMA = 1

DEFAULT_PROFILES = ("preview", "paper")
#: Steps of each run in ``--multi-run`` (five logged windows of 30).
MULTI_RUN_STEPS = 150
#: Timed steps per measurement by profile (paper sizes at 64×64 take seconds per step on a CPU).
DEFAULT_STEPS = {"smoke": 5, "preview": 40, "paper": 8}
DEFAULT_WARMUP = 2
COMPILE_TIMEOUT_S = 300.0


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How much each measurement does (the ``--quick`` mode shrinks all of it)."""

    warmup: int = DEFAULT_WARMUP
    steps: int | None = None          # None: DEFAULT_STEPS[profile]
    data_seconds: float = 0.5         # dataset.sample is timed for at least this long (and 3 calls)
    encode_images: int = 2048         # images encoded per evaluation measurement
    encode_batches: tuple[int, int] = (ENCODE_BATCH, 1024)  # the book's batch, and a large one
    encode_repeats: int = 3           # median over this many timed encodings
    compile: bool = True
    compile_timeout: float = COMPILE_TIMEOUT_S
    quick: bool = False               # numbers that check the code, not the machine

    def steps_for(self, profile: str) -> int:
        return self.steps if self.steps is not None else DEFAULT_STEPS[profile]


QUICK = Sizes(warmup=1, steps=2, data_seconds=0.02, encode_images=64, encode_batches=(16, 64), encode_repeats=1,
              compile=False, quick=True)


# ----------------------------------------------------------------------------------------------- models
#: name → BenchModel(label, where its config comes from, profile → the TrainConfig the book trains): every
#: registered paper's ``BENCH_MODELS``.
MODELS: dict[str, BenchModel] = bench_models()


def parse_names(text: str | None, choices, what: str, default) -> tuple[str, ...]:
    """A comma-separated list of names (``all``: every choice), each checked against ``choices``."""
    choices = tuple(choices)
    if text is None:
        return tuple(default)
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if names == ("all",):
        return choices
    unknown = [n for n in names if n not in choices]
    if unknown or not names:
        raise ValueError(f"unknown {what} {', '.join(map(repr, unknown)) or repr(text)}: choose from "
                         f"{', '.join(choices)} (comma-separated, or 'all')")
    return tuple(dict.fromkeys(names))


def bench_config(name: str, profile: str) -> TrainConfig:
    """The TrainConfig the book trains for model family ``name`` at ``profile``."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}: choose from {', '.join(MODELS)}")
    return MODELS[name].config(check_profile(profile))


# ------------------------------------------------------------------------------------------- arithmetic


def overhead(loop_images_per_s: float, bare_images_per_s: float) -> float:
    """The loop's share of time not spent in the bare step: ``1 − loop / bare`` (negative: loop was faster)."""
    if not bare_images_per_s > 0:
        raise ValueError(f"bare images/s must be positive, got {bare_images_per_s}")
    return 1.0 - loop_images_per_s / bare_images_per_s


def overhead_split(loop_images_per_s: float, bare_images_per_s: float, data_fraction: float) -> dict[str, float]:
    """Total overhead, and what is left of it once the loop's data-generation time is taken out."""
    total = overhead(loop_images_per_s, bare_images_per_s)
    compute = loop_images_per_s / max(1.0 - data_fraction, 1e-12)  # the loop's rate without its data time
    return {"overhead": total, "overhead_excluding_data": overhead(compute, bare_images_per_s)}


def loop_rate(history: list[dict], batch_size: int, warmup: int) -> dict[str, float]:
    """Images/s and data-time share of the logged windows after step ``warmup`` (a window ends there)."""
    previous, images, seconds, data = warmup, 0, 0.0, 0.0
    for row in history:
        if row["step"] <= warmup:
            continue
        n = row["step"] - previous
        previous = row["step"]
        window = n * batch_size / row["images_per_s"]
        images, seconds, data = images + n * batch_size, seconds + window, data + row["data_fraction"] * window
    if not seconds:
        raise RuntimeError(f"no logged window after warm-up step {warmup}: history {history}")
    return {"images_per_s": images / seconds, "data_fraction": data / seconds, "steps": previous - warmup,
            "seconds": seconds}


# ------------------------------------------------------------------------------------------- measuring


def _log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _error(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0] if lines else ''}".strip()[:300]


@contextlib.contextmanager
def num_threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def fresh_model(config: TrainConfig, device: torch.device):
    """The model, its optimiser and auxiliary optimiser as :func:`train` builds them."""
    torch.manual_seed(config.seed)
    model = build_model(config).to(device)
    model.train()
    return model, make_optimizer(config, model.vae_parameters()), model.auxiliary_optimizer()


def bare_step(model, optimizer, auxiliary, x: torch.Tensor, x2: torch.Tensor, beta: float,
              loss: Callable | None = None) -> Callable[[], None]:
    """One training step without the loop around it: loss, backward, optimiser step (and the
    discriminator step of a FactorVAE on the second batch ``x2``, as the loop does)."""
    loss = loss or model.loss

    def step() -> None:
        terms = loss(x, beta=beta)
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        optimizer.step()
        if auxiliary is not None:
            model.auxiliary_step(x2, auxiliary)
    return step


def timed_rate(step: Callable[[], None], warmup: int, steps: int, images_per_step: int,
               device: torch.device) -> dict[str, float]:
    """Images/s of ``steps`` calls of ``step`` after ``warmup`` untimed ones (and the warm-up's seconds)."""
    start = time.perf_counter()
    for _ in range(warmup):
        step()
    _sync(device)
    begin = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    end = time.perf_counter()
    return {"images_per_s": steps * images_per_step / (end - begin), "warmup_seconds": begin - start}


def measure_loop(config: TrainConfig, warmup: int, steps: int, device: str) -> dict[str, float]:
    """:func:`train` for ``warmup + steps`` steps into a temporary folder. A log window ends at step
    ``warmup`` (``log_every = warmup``), so the windows after it are exactly the timed steps; the final
    checkpoint is written after the last window closes, and no other checkpoint or snapshot falls inside."""
    run = dataclasses.replace(config, steps=warmup + steps, log_every=warmup, checkpoint_every=10 ** 9,
                              snapshot_every=None)
    with tempfile.TemporaryDirectory(prefix="dvae-bench-") as tmp:
        result = train(run, Path(tmp), device=device, progress=False)
    return loop_rate(result["history"], config.batch_size, warmup)


def measure_data(dataset, batch_size: int, rng: np.random.Generator, min_seconds: float) -> float:
    """Images/s of ``dataset.sample(batch_size)`` alone (at least 3 calls and ``min_seconds``)."""
    dataset.sample(batch_size, rng)
    calls, start = 0, time.perf_counter()
    while calls < 3 or time.perf_counter() - start < min_seconds:
        dataset.sample(batch_size, rng)
        calls += 1
    return calls * batch_size / (time.perf_counter() - start)


EVAL_CONTEXTS: dict[str, Callable[[], contextlib.AbstractContextManager]] = {
    "plain": contextlib.nullcontext, "no_grad": torch.no_grad, "inference_mode": torch.inference_mode}


def encode_rate(model, images: torch.Tensor, batch_size: int, context: str, repeats: int) -> float:
    """Images/s of encoding ``images`` in chunks of ``batch_size`` under ``context`` (as ``encode_means``:
    posterior means to CPU float64 numpy); the median of ``repeats`` timings after one untimed pass."""
    from dvae_core.evaluate import encode_means

    dev = next(model.parameters()).device

    def run() -> None:
        if context == "inference_mode":  # the library's own function, which runs under inference_mode
            encode_means(model, images, batch_size)
            return
        with EVAL_CONTEXTS[context]():
            chunks = [model.encode(images[i:i + batch_size].to(dev))[0].detach().cpu()
                      for i in range(0, len(images), batch_size)]
            torch.cat(chunks).double().numpy()

    run()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        rates.append(len(images) / (time.perf_counter() - start))
    return float(np.median(rates))


def _option(measure: Callable[[], float | dict]) -> dict[str, Any]:
    """One lever option: its images/s (and extras), or the error it raised."""
    try:
        value = measure()
    except Exception as err:  # a lever that does not work here is a result, not a crash
        return {"error": _error(err)}
    return value if isinstance(value, dict) else {"images_per_s": float(value)}


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def make_batches(config: TrainConfig, dataset, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The two batches every bare-step measurement trains on (a FactorVAE's discriminator takes the second)."""
    rng = np.random.default_rng(config.seed)
    x, _ = dataset.sample(config.batch_size, rng)
    x2, _ = dataset.sample(config.batch_size, rng)
    return x.to(device), x2.to(device)


def measure_compiled(config: TrainConfig, x, x2, warmup: int, steps: int, device: torch.device) -> dict[str, float]:
    """The bare step with ``torch.compile(model.loss)``; the first warm-up step compiles (``compile_seconds``)."""
    model, optimizer, auxiliary = fresh_model(config, device)
    step = bare_step(model, optimizer, auxiliary, x, x2, config.beta, torch.compile(model.loss))
    rate = timed_rate(step, max(warmup, 1), steps, config.batch_size, device)
    return {"images_per_s": rate["images_per_s"], "compile_seconds": rate["warmup_seconds"]}


WORKER_MARK = "DVAE_BENCH_WORKER "  # the line a bench worker prints its JSON result on


def default_allocator_worker(name: str, profile: str, warmup: int, steps: int, device: str) -> dict[str, Any]:
    """What ``--default-allocator-worker`` prints: the bare step in a process that has not called
    :func:`~dvae_core.infra.keep_freed_memory` (the setting cannot be undone in the process that made it)."""
    config = bench_config(name, profile)
    dev = resolve_device(device)
    x, x2 = make_batches(config, build_dataset(config), dev)

    def measure() -> float:
        model, optimizer, auxiliary = fresh_model(config, dev)
        step = bare_step(model, optimizer, auxiliary, x, x2, config.beta)
        return timed_rate(step, warmup, steps, config.batch_size, dev)["images_per_s"]
    return _option(measure)


def compile_worker(name: str, profile: str, warmup: int, steps: int, device: str) -> dict[str, Any]:
    """What ``--compile-worker`` prints: the compiled bare step of one model, or the error it raised."""
    config = bench_config(name, profile)
    dev = resolve_device(device)
    x, x2 = make_batches(config, build_dataset(config), dev)
    return _option(lambda: measure_compiled(config, x, x2, warmup, steps, dev))


def worker_in_subprocess(name: str, profile: str, warmup: int, steps: int, device: str,
                          timeout: float | None, worker: str = "compile") -> dict[str, Any]:
    """A bench worker in a child process (same torch threads): :func:`compile_worker` by default, or
    :func:`default_allocator_worker` with ``worker="default-allocator"``. It is killed with its process group after
    ``timeout`` seconds: a compilation that hangs or takes too long becomes an error string, never a crash.
    (A signal cannot stop it in-process: inductor catches the exception and compiles again, synchronously.)"""
    command = [sys.executable, "-m", "dvae_core.bench", f"--{worker}-worker", "--models", name, "--profiles", profile,
               "--warmup", str(warmup), "--steps", str(steps), "--device", device,
               "--threads", str(torch.get_num_threads())]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                             start_new_session=True)
    try:
        out, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)  # the child and inductor's compile workers
        child.communicate()
        return {"error": f"took longer than {timeout:g} s (stopped)"}
    for line in reversed(out.splitlines()):
        if line.startswith(WORKER_MARK):
            return json.loads(line[len(WORKER_MARK):])
    last = (err.strip().splitlines() or ["no output"])[-1]
    return {"error": f"{worker} worker exited with status {child.returncode}: {last}"[:300]}


def measure_model(name: str, profile: str, sizes: Sizes, device: str = "auto") -> dict[str, Any]:
    """Every measurement of one model family at one profile (see the module doc)."""
    config = bench_config(name, profile)
    dev = resolve_device(device)
    warmup, steps = sizes.warmup, sizes.steps_for(profile)
    keep_freed_memory()  # as train() does, so the bare step and the loop allocate alike
    began = time.perf_counter()
    batch = config.batch_size
    batches_per_step = 2 if model_kind(config) == "factor_vae" else 1
    label, source, _ = MODELS[name]
    record: dict[str, Any] = {
        "model": name, "label": label, "profile": profile, "source": source, "dataset": config.dataset,
        "batch_size": batch, "steps": steps, "warmup": warmup, "config": json.loads(config.canonical()),
    }

    loop = measure_loop(config, warmup, steps, device)
    record.update(loop_images_per_s=loop["images_per_s"], loop_data_fraction=loop["data_fraction"],
                  loop_steps=loop["steps"])

    dataset = build_dataset(config)
    x, x2 = make_batches(config, dataset, dev)
    record["image_shape"] = list(x.shape[1:])
    rng = np.random.default_rng(config.seed + 1)  # data-generation and evaluation draws

    model, optimizer, auxiliary = fresh_model(config, dev)
    record["parameters"] = int(sum(p.numel() for p in model.parameters()))
    bare = timed_rate(bare_step(model, optimizer, auxiliary, x, x2, config.beta), warmup, steps, batch, dev)
    record["bare_images_per_s"] = bare["images_per_s"]
    record.update(overhead_split(record["loop_images_per_s"], record["bare_images_per_s"], loop["data_fraction"]))
    record["overhead_ok"] = record["overhead"] <= OVERHEAD_GOAL

    record["data_images_per_s"] = measure_data(dataset, batch, rng, sizes.data_seconds)
    record["batches_per_step"] = batches_per_step
    record["consumption_images_per_s"] = record["loop_images_per_s"] * batches_per_step
    record["data_headroom"] = record["data_images_per_s"] / record["consumption_images_per_s"]

    levers: dict[str, dict] = {}

    def bare_option(threads: int | None = None, channels_last: bool = False) -> Callable[[], float]:
        def measure() -> float:
            m, opt, aux = fresh_model(config, dev)
            a, b = x, x2
            if channels_last:
                m = m.to(memory_format=torch.channels_last)
                a, b = x.contiguous(memory_format=torch.channels_last), x2.contiguous(memory_format=torch.channels_last)
            with num_threads(threads) if threads else contextlib.nullcontext():
                return timed_rate(bare_step(m, opt, aux, a, b, config.beta), warmup, steps, batch, dev)["images_per_s"]
        return measure

    cpus = _available_cpus()
    levers["threads"] = {"baseline": "1", "candidate": "2", "options": {
        str(n): _option(bare_option(threads=n)) if n <= cpus else {"skipped": f"{cpus} CPU available"}
        for n in (1, 2)}}
    eager = {"images_per_s": record["bare_images_per_s"]}
    levers["channels_last"] = {"baseline": "contiguous", "candidate": "channels_last", "options": {
        "contiguous": eager, "channels_last": _option(bare_option(channels_last=True))}}
    if sizes.compile:
        _log(f"{name} {profile}: torch.compile (limit {sizes.compile_timeout:g} s)")
        compiled = worker_in_subprocess(name, profile, warmup, steps, device, sizes.compile_timeout)
    else:
        compiled = {"skipped": "quick mode"}
    levers["compile"] = {"baseline": "eager", "candidate": "compiled", "options": {"eager": eager, "compiled": compiled}}
    if sizes.quick:
        default_allocator = {"skipped": "quick mode"}
    else:
        _log(f"{name} {profile}: glibc's default allocator, in a child process")
        default_allocator = worker_in_subprocess(name, profile, warmup, steps, device, None, "default-allocator")
    levers["allocator"] = {"baseline": "glibc default", "candidate": "keep_freed_memory",
                           "options": {"glibc default": default_allocator, "keep_freed_memory": eager}}

    model.eval()
    images, _ = dataset.sample(sizes.encode_images, rng)
    small, big = min(sizes.encode_batches), max(sizes.encode_batches)
    levers["eval_context"] = {"baseline": "plain", "candidate": "inference_mode", "batch_size": small, "options": {
        context: _option(lambda c=context: encode_rate(model, images, small, c, sizes.encode_repeats))
        for context in EVAL_CONTEXTS}}
    levers["encode_batch"] = {"baseline": str(small), "candidate": str(big), "options": {
        str(b): _option(lambda b=b: encode_rate(model, images, b, "inference_mode", sizes.encode_repeats))
        for b in (small, big)}}
    record["encode_images"] = sizes.encode_images
    record["levers"] = levers
    record["seconds"] = time.perf_counter() - began
    return record


def machine_info(device: str) -> dict[str, Any]:
    dev = resolve_device(device)
    processor = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                processor = line.split(":", 1)[1].strip()
                break
    info = {"torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "processor": processor, "cpu_count": os.cpu_count(),
            "cpus_available": _available_cpus(), "threads": torch.get_num_threads(),
            "interop_threads": torch.get_num_interop_threads(), "device": str(dev)}
    if dev.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(dev)
    with contextlib.suppress(OSError, AttributeError):
        info["load_average_start"] = list(os.getloadavg())
    return info


def run_bench(models, profiles, sizes: Sizes, device: str = "auto", output: Path | None = None) -> dict[str, Any]:
    """Measure every (model, profile); write ``output`` after each record (``complete`` false until the end).
    A record that fails holds its error instead of numbers, and the others still run."""
    results: dict[str, Any] = {
        "schema": SCHEMA, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "complete": False, "quick": sizes.quick,
        "machine": machine_info(device), "overhead_goal": OVERHEAD_GOAL,
        "settings": {"models": list(models), "profiles": list(profiles), "warmup": sizes.warmup,
                     "steps": {p: sizes.steps_for(p) for p in profiles}, **{
                         k: v for k, v in dataclasses.asdict(sizes).items() if k not in ("warmup", "steps", "quick")}},
        "records": [],
    }
    for profile in profiles:
        for name in models:
            _log(f"{name} {profile}: {sizes.steps_for(profile)} steps after {sizes.warmup} warm-up ...")
            try:
                record = measure_model(name, profile, sizes, device)
            except Exception as err:  # e.g. a data file this machine lacks: say so, measure the rest
                record = {"model": name, "label": MODELS[name][0], "profile": profile, "error": _error(err)}
                _log(f"{name} {profile}: FAILED {record['error']}")
            else:
                _log(f"{name} {profile}: loop {record['loop_images_per_s']:.0f} img/s, bare "
                     f"{record['bare_images_per_s']:.0f} img/s, overhead {100 * record['overhead']:.1f} %, data "
                     f"{record['data_images_per_s']:.0f} img/s ({record['seconds']:.0f} s)")
            results["records"].append(record)
            if output is not None:
                write_results(results, output)
    results["complete"] = True
    with contextlib.suppress(OSError, AttributeError):
        results["machine"]["load_average_end"] = list(os.getloadavg())
    if output is not None:
        write_results(results, output)
    return results


def write_results(results: dict, path: Path) -> None:
    atomic_write_text(Path(path), json.dumps(results, indent=1, allow_nan=False, default=_json_default) + "\n")


def _json_default(value):
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {value!r}")





# ------------------------------------------------------------------------------------ many runs at once

#: The ways :func:`measure_multi_run` trains many runs of one architecture.
MULTI_RUN_WAYS = ("alone", "processes", "ensemble")


def measure_multi_run(configs: list[TrainConfig], device: str, jobs: int, store: Path) -> dict[str, Any]:
    """Time three ways to train many runs of one architecture, per model (:func:`~dvae_core.train.run_label`):
    one after another in this process ("alone"), ``jobs`` processes at once ("processes", sharing the device)
    and one vectorised ensemble in this process ("ensemble", :mod:`dvae_core.ensemble`). Each way trains into
    its own fresh folder under ``store`` (removed after), after a 2-step warm-up run (CUDA context, cuDNN).

    Per way: ``images_per_s``, every run's images over the wall time, start-up included; and
    ``steady_images_per_s``, the runs' median logged rate after their first window times the runs training at
    once (1, ``jobs``, the ensemble's size): the rate of a long sweep, where a pool's start-up is paid once.
    ``choice`` is "ensemble" when ensembles are faster than processes by steady rate for every model,
    else "processes". The configs' ``log_every`` becomes a fifth of their steps (five logged windows).
    ``max_weight_difference`` and ``mean_weight_difference``: the largest and the mean difference of a weight
    between a run trained alone and the same run as an ensemble's member after all the steps, and
    ``max_loss_difference`` the largest relative difference of their logged losses (float rounding, grown
    over the steps: Adam moves a weight whose gradient is near zero by about the learning rate either way)."""
    import shutil

    from dvae_core.sweep import get_or_train_all
    from dvae_core.train import run_label, throughput

    store = Path(store)
    steps = configs[0].steps
    configs = [dataclasses.replace(c, log_every=max(1, steps // 5), checkpoint_every=steps) for c in configs]
    warm = dataclasses.replace(configs[0], steps=2, seed=configs[0].seed - 1)
    get_or_train_all([warm], store=store / "warm-up", device=device, progress=False, jobs=1, ensemble=1)
    shutil.rmtree(store / "warm-up")
    results: dict[str, dict] = {}
    for label in dict.fromkeys(run_label(c) for c in configs):
        group = [c for c in configs if run_label(c) == label]
        images = len(group) * steps * group[0].batch_size
        results[label] = {}
        finals = {}  # per way, each run's final weights and logged losses
        for way in MULTI_RUN_WAYS:
            where = store / f"{way}-{label}"
            t0 = time.perf_counter()
            trained = get_or_train_all(group, store=where, device=device, progress=False,
                                       jobs=jobs if way == "processes" else 1,
                                       ensemble=len(group) if way == "ensemble" else 1)
            seconds = time.perf_counter() - t0
            shutil.rmtree(where)
            at_once = {"alone": 1, "processes": min(jobs, len(group)), "ensemble": len(group)}[way]
            steady = at_once * float(np.median([throughput(run["history"]) for run in trained]))
            results[label][way] = {"wall_seconds": round(seconds, 2), "images_per_s": round(images / seconds, 1),
                                   "steady_images_per_s": round(steady, 1)}
            finals[way] = [(torch.cat([p.detach().flatten().cpu() for p in run["model"].parameters()]),
                             [row["loss"] for row in run["history"]]) for run in trained]
        # how far an ensemble's member ends from its run trained alone (float rounding, grown over the steps)
        pairs = list(zip(finals["alone"], finals["ensemble"]))
        results[label]["ensemble"].update(
            max_weight_difference=float(max((a - b).abs().max() for (a, _), (b, _) in pairs)),
            mean_weight_difference=float(np.mean([float((a - b).abs().mean()) for (a, _), (b, _) in pairs])),
            max_loss_difference=float(max(abs(x - y) / abs(x) for (_, la), (_, lb) in pairs for x, y in zip(la, lb))))
        for rate in ("images_per_s", "steady_images_per_s"):
            alone = results[label]["alone"][rate]
            for way in MULTI_RUN_WAYS:
                results[label][way][rate.replace("images_per_s", "speedup")] = round(results[label][way][rate] / alone, 2)
    faster = {label: max(("processes", "ensemble"), key=lambda way: ways[way]["steady_images_per_s"])
              for label, ways in results.items()}
    return {"machine": machine_info(device), "results": results,
            "choice": "ensemble" if set(faster.values()) == {"ensemble"} else "processes",
            "faster_by_model": faster, "jobs": jobs, "runs_per_model": len(configs) // len(results), "steps": steps,
            "batch_size": configs[0].batch_size, "runs": len(MULTI_RUN_WAYS) * len(configs)}


def multi_run_configs(profile: str, runs: int, steps: int) -> list[TrainConfig]:
    """Fig. 2's SB and DeConv runs at ``profile``: ``runs`` seeds of each, ``steps`` steps (seeds 9000 and up,
    which nothing else trains)."""
    from dvae_core.papers import sbd

    p = dataclasses.replace(sbd.profile(profile), steps=steps, seeds=tuple(range(9000, 9000 + runs)))
    return sbd.comparison_configs(p)


def run_multi_run_bench(profile: str, runs: int, steps: int, jobs: int, device: str, output: Path) -> dict:
    """:func:`measure_multi_run` on :func:`multi_run_configs`, written to ``output`` with its settings."""
    with tempfile.TemporaryDirectory(prefix="dvae-multi-run-") as store:
        record = measure_multi_run(multi_run_configs(profile, runs, steps), device, jobs, Path(store))
    record = {"schema": SCHEMA, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "profile": profile, **record}
    write_results(record, output)
    return record


# ------------------------------------------------------------------------------------------------ CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dvae_core.bench", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", help=f"comma-separated, of {', '.join(PROFILES)} "
                                           f"(default {','.join(DEFAULT_PROFILES)})")
    parser.add_argument("--models", help=f"comma-separated, of {', '.join(MODELS)} (default: all)")
    parser.add_argument("--steps", type=int, help=f"timed steps per measurement (default by profile: {DEFAULT_STEPS})")
    parser.add_argument("--warmup", type=int, help=f"untimed steps before each measurement (default {DEFAULT_WARMUP})")
    parser.add_argument("--quick", action="store_true",
                        help="seconds, not minutes: 2 steps, tiny encodings, no torch.compile (checks the code only)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    parser.add_argument("--threads", type=int, help="torch threads in this process (default: torch's)")
    parser.add_argument("--compile-timeout", type=float, default=COMPILE_TIMEOUT_S,
                        help="seconds torch.compile may take per model before it is recorded as failed")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="results JSON (default results/bench.json)")
    parser.add_argument("--page-dir", type=Path, default=GENERATED_DIR,
                        help="where the page fragment and figure go (default book/_generated)")
    parser.add_argument("--no-page", action="store_true", help="write the results only, not the page fragment")
    parser.add_argument("--render-only", action="store_true", help="measure nothing: rebuild the page from --output")
    parser.add_argument("--multi-run", action="store_true",
                        help="measure only many runs at once (alone, --jobs processes, one ensemble) on Fig. 2's "
                             f"models at the first of --profiles; results to {MULTI_RUN_OUTPUT.relative_to(REPO_ROOT)}")
    parser.add_argument("--runs", type=int, default=4, help="--multi-run: runs per model (default 4)")
    parser.add_argument("--jobs", type=int, default=2, help="--multi-run: processes (default 2)")
    parser.add_argument("--compile-worker", action="store_true", help=argparse.SUPPRESS)  # see worker_in_subprocess
    parser.add_argument("--default-allocator-worker", action="store_true", help=argparse.SUPPRESS)  # the same
    args = parser.parse_args(argv)

    if args.render_only:
        for path in write_page(load_results(args.output), args.page_dir):
            _log(f"wrote {path}")
        write_multi_run_page(load_results(MULTI_RUN_OUTPUT), args.page_dir)
        return 0
    profiles = parse_names(args.profiles, PROFILES, "profile", DEFAULT_PROFILES)
    models = parse_names(args.models, MODELS, "model", MODELS)
    for name, value, least in (("--steps", args.steps, 1), ("--warmup", args.warmup, 1), ("--threads", args.threads, 1)):
        if value is not None and value < least:
            raise ValueError(f"{name} {value}: give {least} or more")
    resolve_device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.compile_worker or args.default_allocator_worker:
        if len(models) != 1 or len(profiles) != 1:
            raise ValueError("a bench worker measures one model at one profile")
        warmup = args.warmup if args.warmup is not None else DEFAULT_WARMUP
        steps = args.steps if args.steps is not None else DEFAULT_STEPS[profiles[0]]
        worker = compile_worker if args.compile_worker else default_allocator_worker
        print(WORKER_MARK + json.dumps(worker(models[0], profiles[0], warmup, steps, args.device)))
        return 0
    if args.multi_run:
        for name, value in (("--runs", args.runs), ("--jobs", args.jobs)):
            if value < 1:
                raise ValueError(f"{name} {value}: give 1 or more")
        output = args.output if args.output != DEFAULT_OUTPUT else MULTI_RUN_OUTPUT
        record = run_multi_run_bench(profiles[0], args.runs, args.steps or MULTI_RUN_STEPS, args.jobs, args.device,
                                     output)
        if not args.no_page:
            _log(f"wrote {write_multi_run_page(record, args.page_dir)}")
        print(output)
        return 0
    sizes = QUICK if args.quick else Sizes(compile_timeout=args.compile_timeout)
    if args.steps is not None:
        sizes = dataclasses.replace(sizes, steps=args.steps)
    if args.warmup is not None:
        sizes = dataclasses.replace(sizes, warmup=args.warmup)
    results = run_bench(models, profiles, sizes, args.device, args.output)
    if not args.no_page:
        for path in write_page(results, args.page_dir):
            _log(f"wrote {path}")
    print(args.output)
    return 1 if any("error" in r for r in results["records"]) else 0


if __name__ == "__main__":
    from dvae_core.cli import run_main  # expected errors: one "error: ..." line, no traceback

    sys.exit(run_main(main))
