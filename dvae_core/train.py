"""One training loop for every model in the book.

``TrainConfig`` is the whole recipe of a run (data, model, objective, optimiser, steps, seed); its
hash names the run in the run store (``dvae_core.runs``), so two notebooks asking for the same
recipe share one trained model. The loop:

- seeds torch and the data generator from ``seed``; batches are rendered on the fly by the
  factor dataset, so the data stream is a pure function of (seed, step);
- writes an atomic checkpoint (temp file + rename) every ``checkpoint_every`` steps holding the
  model, optimiser, both RNG states and the history, and resumes from it after a crash;
- stops with a clear error naming the step and the loss term if any term is NaN or infinite;
- logs images/s and the share of time spent making data, with a tqdm bar on stderr;
- keeps freed tensor memory in the process (:func:`keep_freed_memory`), which on a CPU makes every
  model train faster with bit-identical results.
"""

from __future__ import annotations

import ctypes
import functools
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from dvae_core.models import VAE, VAEConfig
from dvae_core.models.factor_vae import FactorVAE, FactorVAEConfig
from dvae_core.models.info_wgan import InfoWGAN, InfoWGANConfig
from dvae_core.models.rae import RAEConfig, RegularizedAE
from dvae_core.models.vlae import VLAE, GrayContextVLAEConfig, VLAEConfig

CHECKPOINT = "checkpoint.pt"
SNAPSHOTS = "snapshots"


@dataclass(frozen=True)
class TrainConfig:
    """A run's whole recipe. Optional parts default to None, which the run store's hash leaves out,
    so adding one never renames existing runs."""

    dataset: str = "colored_sprites"
    dataset_kwargs: dict = field(default_factory=dict)
    model: VAEConfig = field(default_factory=VAEConfig)
    beta: float = 1.0
    steps: int = 1000
    batch_size: int = 64
    lr: float = 3e-4
    seed: int = 0
    checkpoint_every: int = 500
    log_every: int = 50
    factor_vae: FactorVAEConfig | None = None   # set: train a FactorVAE (Kim & Mnih 2018)
    optimizer: str | None = None                # None: Adam; "adamax" (the VLAE paper's)
    snapshot_every: int | None = None           # set: keep the model's weights every this many steps

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def canonical(self) -> str:
        """The recipe as sorted JSON (tuples as lists): what run hashes and checkpoint checks compare."""
        return canonical_json(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        d = dict(d)
        d["model"] = model_config_from_dict(d["model"])
        if d.get("factor_vae") is not None:
            factor = dict(d["factor_vae"])
            factor["disc_betas"] = tuple(factor.get("disc_betas", FactorVAEConfig.disc_betas))
            d["factor_vae"] = FactorVAEConfig(**factor)
        return cls(**d)


#: Model configurations and classes by their ``kind`` field. VAEConfig has none (its runs' hashes predate
#: the others), so a model dict without ``kind`` is a VAE, built by :func:`build_model` (VAE or FactorVAE).
MODEL_CONFIGS: dict[str, type] = {"vae": VAEConfig, "rae": RAEConfig, "vlae": VLAEConfig,
                                   "vlae_gray": GrayContextVLAEConfig, "info_wgan": InfoWGANConfig}
MODEL_CLASSES: dict[str, type] = {"rae": RegularizedAE, "vlae": VLAE, "vlae_gray": VLAE, "info_wgan": InfoWGAN}
OPTIMIZERS = {"adam": torch.optim.Adam, "adamax": torch.optim.Adamax}


def model_config_from_dict(d: dict[str, Any]):
    """The model configuration a run's JSON recipe describes (lists back to tuples)."""
    kind = d.get("kind", "vae")
    if kind not in MODEL_CONFIGS:
        raise ValueError(f"unknown model kind {kind!r}: choose one of {sorted(MODEL_CONFIGS)}")
    cls = MODEL_CONFIGS[kind]
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def canonical_json(config_dict: dict[str, Any]) -> str:
    return json.dumps(config_dict, sort_keys=True, default=list)


#: glibc's ``mallopt`` parameters (``<malloc.h>``), and the values :func:`keep_freed_memory` sets.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_BYTES, TRIM_THRESHOLD_BYTES = 32 << 20, 128 << 20


@functools.cache
def keep_freed_memory() -> bool:
    """Stop glibc from returning each training step's freed activations to the operating system.

    By default glibc serves a large allocation (over a threshold that starts at 128 KiB) with its own
    ``mmap`` and unmaps it when freed, and trims free memory off the top of its heap, so every CPU
    training step maps its activation buffers afresh and the kernel zero-fills them page by page. With
    allocations under 32 MiB served from the heap, and up to 128 MiB of free heap kept, the buffers are
    reused from step to step. On one thread the book's models trained ×1.0 (VLAE) to ×1.6 (FactorVAE)
    faster, with bit-identical weights: only where memory comes from changes, not what is computed.

    Process-wide and once per process (the sweep's workers and :func:`train` call it); True if glibc
    took both settings, False where there is no glibc (macOS, musl), where nothing changes.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
            libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
    except (OSError, AttributeError):
        return False


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"unknown device {device!r}: use 'auto', 'cpu' or 'cuda[:N]'") from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but torch sees no CUDA GPU: use device='auto' or 'cpu'")
    return resolved


def build_model(config: TrainConfig) -> torch.nn.Module:
    kind = getattr(config.model, "kind", "vae")
    if kind != "vae":
        return MODEL_CLASSES[kind](config.model)
    if config.factor_vae is not None:
        return FactorVAE(config.model, config.factor_vae)
    return VAE(config.model)


def make_optimizer(config: TrainConfig, parameters) -> torch.optim.Optimizer:
    name = config.optimizer or "adam"
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}: choose one of {sorted(OPTIMIZERS)}")
    return OPTIMIZERS[name](parameters, lr=config.lr)


def run_label(config: TrainConfig) -> str:
    """A short name for progress bars and logs: the decoder of a VAE, the variant of other models."""
    model = config.model
    return getattr(model, "variant", None) or getattr(model, "decoder", None) or getattr(model, "kind", "model")


def build_dataset(config: TrainConfig):
    from dvae_core.data import make_dataset

    return make_dataset(config.dataset, **config.dataset_kwargs)


def atomic_torch_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint written by :func:`train`, refusing foreign or damaged files clearly."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated or foreign files
        raise RuntimeError(
            f"cannot read checkpoint {path} ({type(err).__name__}: {err}); it is truncated or not a "
            f"dvae checkpoint: delete it (and its run folder) to retrain"
        ) from err
    if not isinstance(state, dict) or not {"model", "optimizer", "step", "config"} <= state.keys():
        raise RuntimeError(f"{path} is not a dvae checkpoint: delete it (and its run folder) to retrain")
    return state


def snapshot_path(run_dir: Path, step: int) -> Path:
    """Where a run keeps its weights at ``step`` (``snapshot_every`` runs; what "over training" plots read)."""
    return Path(run_dir) / SNAPSHOTS / f"step_{step:08d}.pt"


class NonFiniteLossError(FloatingPointError):
    pass


def _check_finite(terms: dict[str, torch.Tensor], step: int) -> None:
    for name, value in terms.items():
        if not torch.isfinite(value).all():
            raise NonFiniteLossError(
                f"step {step}: loss term '{name}' is {value.item()}; lower the learning rate, or check "
                f"the data are in [0, 1] (a resumed run restarts from the last finite checkpoint)"
            )


def show_progress(progress: bool | None) -> bool:
    """Progress bars are on unless asked off, here or by ``DVAE_PROGRESS=0`` (the reproduce batch sets it
    so bars stay out of committed notebook outputs)."""
    return os.environ.get("DVAE_PROGRESS", "1") != "0" if progress is None else progress


def train(config: TrainConfig, run_dir: Path | str, device: str = "auto", progress: bool | None = None) -> dict[str, Any]:
    """Train (or resume) the run ``config`` in ``run_dir``; returns the final state dict.

    The returned dict has ``model`` (a ``VAE`` in eval mode, on ``device``), ``history`` (a list of
    logged rows) and ``config``.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)
    keep_freed_memory()
    torch.manual_seed(config.seed)
    dataset = build_dataset(config)
    rng = np.random.default_rng(config.seed)
    model = build_model(config).to(dev)
    optimizer = make_optimizer(config, model.vae_parameters())
    auxiliary = model.auxiliary_optimizer()  # FactorVAE's discriminator has its own
    history: list[dict[str, float]] = []
    step = 0

    ckpt_path = run_dir / CHECKPOINT
    if ckpt_path.exists():
        state = load_checkpoint(ckpt_path)
        if canonical_json(state["config"]) != config.canonical():
            raise RuntimeError(f"{ckpt_path} belongs to another configuration: delete {run_dir} to retrain")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if auxiliary is not None:
            auxiliary.load_state_dict(state["auxiliary_optimizer"])
        rng.bit_generator.state = json.loads(state["data_rng"])
        torch.set_rng_state(state["torch_rng"])
        history, step = json.loads(state["history"]), state["step"]

    def save() -> None:
        atomic_torch_save({
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
            "config": config.to_dict(), "history": json.dumps(history),
            "data_rng": json.dumps(rng.bit_generator.state), "torch_rng": torch.get_rng_state(),
            **({"auxiliary_optimizer": auxiliary.state_dict()} if auxiliary is not None else {}),
        }, ckpt_path)

    model.train()
    bar = tqdm(total=config.steps, initial=step, disable=not show_progress(progress), desc=f"{run_label(config)} s{config.seed}",
               leave=False, mininterval=2.0)
    sums: dict[str, float] = {}
    window_start, data_seconds, window_steps = time.perf_counter(), 0.0, 0
    while step < config.steps:
        t0 = time.perf_counter()
        x, _ = dataset.sample(config.batch_size, rng)
        x = x.to(dev, non_blocking=True)
        data_seconds += time.perf_counter() - t0
        terms = model.loss(x, beta=config.beta)
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        step += 1
        _check_finite(terms, step)
        optimizer.step()
        if auxiliary is not None:  # Kim & Mnih's Algorithm 2: a second batch trains the discriminator
            x2, _ = dataset.sample(config.batch_size, rng)
            aux_terms = model.auxiliary_step(x2.to(dev, non_blocking=True), auxiliary)
            _check_finite(aux_terms, step)
            terms.update(aux_terms)
        for name, value in terms.items():
            sums[name] = sums.get(name, 0.0) + value.item()
        window_steps += 1
        bar.update(1)
        if step % config.log_every == 0 or step == config.steps:
            elapsed = time.perf_counter() - window_start
            row = {"step": step, **{k: v / window_steps for k, v in sums.items()},
                   "images_per_s": window_steps * config.batch_size / elapsed,
                   "data_fraction": data_seconds / elapsed}
            history.append(row)
            bar.set_postfix(loss=f"{row['loss']:.1f}", ips=f"{row['images_per_s']:.0f}")
            sums, window_start, data_seconds, window_steps = {}, time.perf_counter(), 0.0, 0
        if config.snapshot_every and step % config.snapshot_every == 0:
            snapshot_path(run_dir, step).parent.mkdir(exist_ok=True)
            atomic_torch_save(model.state_dict(), snapshot_path(run_dir, step))
        if step % config.checkpoint_every == 0 or step == config.steps:
            save()
    bar.close()
    if step == 0 or not ckpt_path.exists():
        save()
    model.eval()
    return {"model": model, "history": history, "config": config}


def throughput(history: list[dict[str, float]]) -> float:
    """Median training images/s over the logged windows (the first one includes warm-up)."""
    rates = [row["images_per_s"] for row in history[1:] or history]
    return float(np.median(rates)) if rates else math.nan
