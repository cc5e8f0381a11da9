"""One training loop for every model in the book.

``TrainConfig`` is the whole recipe of a run (data, model, objective, optimiser, steps, seed); its
hash names the run in the run store (``dvae_core.runs``), so two notebooks asking for the same
recipe share one trained model. The loop:

- refuses a model that cannot read the dataset's images (channels, size) before anything is written;
- seeds torch and the data generator from ``seed``; batches are rendered on the fly by the
  factor dataset, so the data stream is a pure function of (seed, step);
- writes an atomic checkpoint (temp file, fsync, rename) every ``checkpoint_every`` steps holding the
  model, optimiser, both RNG states and the history, and resumes from it after a crash (a checkpoint of
  another recipe, or with another architecture's weights, is refused in one line);
- stops with a clear error naming the step and the loss term if any term is NaN or infinite;
- logs images/s and the share of time spent making data, with a tqdm bar on stderr;
- keeps freed tensor memory in the process (:func:`dvae_core.infra.keep_freed_memory`), which on a CPU makes every
  model train faster with bit-identical results.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Protocol, get_args, runtime_checkable

import numpy as np
import torch
from tqdm.auto import tqdm

from dvae_core.data.base import FactorDataset
from dvae_core.infra import (atomic_torch_save, canonical_json, keep_freed_memory, load_torch_file, resolve_device,
                             short_cause, show_progress)
from dvae_core.models import VAE, VAEConfig
from dvae_core.models.factor_vae import FactorVAE, FactorVAEModelConfig
from dvae_core.models.info_wgan import InfoWGAN, InfoWGANConfig
from dvae_core.models.rae import RAEConfig, RegularizedAE
from dvae_core.models.vlae import VLAE, GrayContextVLAEConfig, VLAEConfig

CHECKPOINT = "checkpoint.pt"
SNAPSHOTS = "snapshots"
Optimizer = Literal["adam", "adamax"]
Precision = Literal["tf32", "bf16"]
PRECISIONS = ("tf32", "bf16")


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
    optimizer: Optimizer | None = None          # None: Adam; "adamax" (the VLAE paper's)
    snapshot_every: int | None = None           # set: keep the model's weights every this many steps
    # GPU speed options, off (None) by default until measured to pay: "tf32" lets CUDA matmuls and convolutions
    # round inputs to TF32, "bf16" runs the forward passes under bfloat16 autocast; compile=True trains through
    # torch.compile(model.loss). Set, each is part of the recipe (and so of the run's name).
    precision: Precision | None = None
    compile: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if v is not None}
        d["model"] = {k: v for k, v in d["model"].items() if v is not None}  # optional model fields, likewise
        return d

    def canonical(self) -> str:
        """The recipe as sorted JSON (tuples as lists): what run hashes and checkpoint checks compare."""
        return canonical_json(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        d = upgrade_recipe(d)
        d["model"] = model_config_from_dict(d["model"])
        return cls(**d)


def upgrade_recipe(d: dict[str, Any]) -> dict[str, Any]:
    """A recipe in today's layout. Until the FactorVAE became a model kind, its TC term sat beside the model
    (``"factor_vae": {gamma, disc_…}`` next to a VAE's ``"model"``); such a recipe becomes a ``factor_vae``
    model holding both, which names the same training run (``runs.migrate_store`` renames stored ones)."""
    d = dict(d)
    factor = d.pop("factor_vae", None)
    if factor is not None:
        d["model"] = {**d.get("model", {}), **factor, "kind": "factor_vae"}
    return d


@runtime_checkable
class TrainableModel(Protocol):
    """What :func:`train` asks of a model: every class :func:`build_model` makes has it.

    One step: ``loss(x, beta)`` on a batch drawn from the run's dataset returns named scalar terms, of
    which ``"loss"`` is minimised by the main optimiser over ``vae_parameters()``; every term is logged and
    checked for NaN. A model with a second network returns that network's optimiser from
    ``auxiliary_optimizer()`` (otherwise None) and is then an :class:`AuxiliaryTrainedModel`. After training
    the model is in eval mode, and the chapters use its own ``encode`` / ``decode``.
    """

    def loss(self, x: torch.Tensor, beta: float = 1.0) -> dict[str, torch.Tensor]: ...

    def vae_parameters(self) -> Iterable[torch.nn.Parameter]: ...

    def auxiliary_optimizer(self) -> torch.optim.Optimizer | None: ...


@runtime_checkable
class AuxiliaryTrainedModel(TrainableModel, Protocol):
    """A model with a second network (FactorVAE's discriminator, InfoWGAN-GP's critic):
    ``auxiliary_step(x2, optimizer)`` trains it on a second, independent batch after each main step
    (Kim & Mnih's Algorithm 2) and returns its own terms, logged beside the main ones."""

    def auxiliary_step(self, x: torch.Tensor, optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]: ...


#: Model configurations and classes by their ``kind`` field. VAEConfig has none (its runs' hashes predate
#: the others), so a model dict without ``kind`` is a VAE.
MODEL_CONFIGS: dict[str, type] = {"vae": VAEConfig, "factor_vae": FactorVAEModelConfig, "rae": RAEConfig,
                                   "vlae": VLAEConfig, "vlae_gray": GrayContextVLAEConfig, "info_wgan": InfoWGANConfig}
MODEL_CLASSES: dict[str, type] = {"rae": RegularizedAE, "vlae": VLAE, "vlae_gray": VLAE, "info_wgan": InfoWGAN}
OPTIMIZERS = dict(zip(get_args(Optimizer), (torch.optim.Adam, torch.optim.Adamax)))


def model_config_from_dict(d: dict[str, Any]):
    """The model configuration a run's JSON recipe describes (lists back to tuples)."""
    kind = d.get("kind", "vae")
    if kind not in MODEL_CONFIGS:
        raise ValueError(f"unknown model kind {kind!r}: choose one of {sorted(MODEL_CONFIGS)}")
    cls = MODEL_CONFIGS[kind]
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def model_kind(config: TrainConfig) -> str:
    """The ``kind`` of a run's model (``"vae"`` for a VAEConfig, which has no field for it)."""
    return getattr(config.model, "kind", "vae")


def build_model(config: TrainConfig) -> TrainableModel:
    kind = model_kind(config)
    if kind == "vae":
        return VAE(config.model)
    if kind == "factor_vae":
        return FactorVAE(config.model.vae, config.model.factor)
    return MODEL_CLASSES[kind](config.model)


def untrained_model(config: TrainConfig, device: str = "cpu") -> TrainableModel:
    """The run's model before its first step: built after seeding torch with the run's seed, as
    :func:`train` builds it (the learning gates compare a trained run with this), in eval mode."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = build_model(config)
    return model.to(resolve_device(device)).eval()


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


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint written by :func:`train`, refusing foreign or damaged files clearly."""
    state = load_torch_file(path, "delete it (and its run folder) to retrain")
    if not isinstance(state, dict) or not {"model", "optimizer", "step", "config"} <= state.keys():
        raise RuntimeError(f"{path} is not a dvae checkpoint: delete it (and its run folder) to retrain")
    return state


def load_weights(model: torch.nn.Module, weights: Any, path: Path, fix: str) -> None:
    """``model.load_state_dict(weights)`` for weights read from ``path``; weights of another architecture (a
    file copied over from another run) are refused with one line that counts the missing, unexpected and
    reshaped tensors, names one of each and ends with ``fix``, instead of torch's dump of every key."""
    if not isinstance(weights, dict) or not all(isinstance(value, torch.Tensor) for value in weights.values()):
        raise RuntimeError(f"{path} holds no model weights (a {type(weights).__name__} of other values): {fix}")
    expected = model.state_dict()
    missing = [name for name in expected if name not in weights]
    unexpected = [name for name in weights if name not in expected]
    reshaped = [name for name in expected if name in weights and weights[name].shape != expected[name].shape]
    if missing or unexpected or reshaped:
        parts = [f"{len(names)} {what}, e.g. {names[0]}" for names, what in
                 ((missing, "missing tensors"), (unexpected, "unexpected tensors")) if names]
        if reshaped:
            name = reshaped[0]
            parts.append(f"{len(reshaped)} tensors of another shape, e.g. {name} {list(weights[name].shape)} in "
                         f"the file, {list(expected[name].shape)} in the model")
        raise RuntimeError(f"{path} holds the weights of another architecture than its recipe builds "
                           f"({'; '.join(parts)}): {fix}")
    model.load_state_dict(weights)


def data_image_shape(dataset) -> tuple[int, ...]:
    """The (channels, height, width) of the images ``dataset`` serves, read off one drawn image (its own
    generator: the run's data stream is untouched)."""
    return tuple(dataset.sample(1, np.random.default_rng(0))[0].shape[1:])


def check_model_fits_data(config: TrainConfig, image_shape: tuple[int, ...]) -> None:
    """Refuse a recipe whose model cannot read its dataset's images (``image_shape``, channels first) before
    any work starts, naming the model field, the dataset and the fix; otherwise the first training step fails
    deep inside a layer (``mat1 and mat2 shapes cannot be multiplied``). Models without the fields pass."""
    if len(image_shape) != 3:
        return
    channels, height, width = image_shape
    in_channels = getattr(config.model, "in_channels", None)
    resolution = getattr(config.model, "resolution", None)
    problems = []
    if in_channels is not None and in_channels != channels:
        problems.append(f"model.in_channels is {in_channels} but {config.dataset} images have {channels} "
                        f"channel{'s' if channels != 1 else ''}: set model.in_channels to {channels}")
    if resolution is not None and (height, width) != (resolution, resolution):
        from dvae_core.data import dataset_parameters

        if height != width:
            fix = "the model reads square images only: crop or pad the data"
        else:
            fix = f"set model.resolution to {height}"
            if "resolution" in dataset_parameters(config.dataset):
                fix += f" (or dataset_kwargs 'resolution' to {resolution})"
        problems.append(f"model.resolution is {resolution} but {config.dataset} images are {height}×{width}: {fix}")
    if problems:
        raise ValueError("; ".join(problems))


def snapshot_path(run_dir: Path, step: int) -> Path:
    """Where a run keeps its weights at ``step`` (``snapshot_every`` runs; what "over training" plots read)."""
    return Path(run_dir) / SNAPSHOTS / f"step_{step:08d}.pt"


class NonFiniteLossError(FloatingPointError):
    pass


class FiniteGuard:
    """Watches every loss term of one or more runs trained together for NaN/inf without a host–device sync
    per step.

    :meth:`watch` records, on the training device, each run's first step at which any term was not finite and
    every term's value at that step; :meth:`check` reads that record (one sync) and raises naming the step and
    term (and the run, where several train together: ``labels``). The loop checks at every log row and before
    every checkpoint or snapshot, so weights that a non-finite step has touched are never saved: a resumed run
    restarts from the last finite checkpoint.
    """

    def __init__(self, labels: list[str] | None = None):
        self.labels = labels
        self.names: list[str] | None = None
        self.first_bad_step: torch.Tensor | None = None
        self.values: torch.Tensor | None = None

    def watch(self, terms: dict[str, torch.Tensor], step: int) -> None:
        """``terms``: scalars for one run, or ``(K,)`` tensors for ``K`` runs."""
        size = len(self.labels) if self.labels else 1
        values = torch.stack([v.detach().reshape(size).to(torch.float64) for v in terms.values()], dim=1)
        if self.names is None or self.names != list(terms):
            self.check()  # a new set of terms (never mid-run in practice): settle the old record first
            self.names = list(terms)
            self.first_bad_step = torch.zeros(size, dtype=torch.int64, device=values.device)
            self.values = torch.zeros_like(values)
        first = (self.first_bad_step == 0) & ~torch.isfinite(values).all(dim=1)
        self.first_bad_step = torch.where(first, torch.full_like(self.first_bad_step, step), self.first_bad_step)
        self.values = torch.where(first[:, None], values, self.values)

    def check(self) -> None:
        if self.first_bad_step is None:
            return
        bad = self.first_bad_step.tolist()
        runs = [k for k, s in enumerate(bad) if s]
        if not runs:
            return
        k = min(runs, key=lambda r: bad[r])
        name, value = next((n, v) for n, v in zip(self.names, self.values[k].tolist()) if not math.isfinite(v))
        who = f"{self.labels[k]}: " if self.labels else ""
        raise NonFiniteLossError(
            f"{who}step {bad[k]}: loss term '{name}' is {value}; lower the learning rate, or check the data are in "
            f"[0, 1] (a resumed run restarts from the last finite checkpoint)")


def check_precision(precision: str | None) -> None:
    if precision is not None and precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: choose one of {PRECISIONS} or leave it unset (float32)")


@contextlib.contextmanager
def numeric_precision(precision: str | None, device: torch.device):
    """The run's precision for the block: TF32 allowed in CUDA matmuls and convolutions ("tf32", restored
    after), or bfloat16 autocast of what runs inside ("bf16"); None: plain float32."""
    check_precision(precision)
    if precision == "bf16":
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            yield
        return
    if precision == "tf32":
        saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        try:
            yield
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
        return
    yield


class Runs(Protocol):
    """What :func:`train_runs` trains: the models and optimisers of ``size`` runs and their step.
    :class:`OneRun` is one run (what :func:`train` trains); :class:`dvae_core.ensemble.StackedRuns` is several
    VAE runs as one vectorised model."""

    label: str  # for the progress bar

    def load_weights(self, k: int, weights: dict[str, torch.Tensor], path: Path, fix: str) -> None:
        """Member ``k``'s model weights from its checkpoint ``path`` (:func:`load_weights`' refusals, ending in
        ``fix``)."""

    def load_state(self, k: int, state: dict[str, Any]) -> None:
        """Member ``k``'s optimiser state(s) and noise generator from its checkpoint ``state``."""

    def start(self) -> None:
        """Called once after every checkpoint is loaded, before the first step."""

    def step(self, draw: Callable[[], torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        """One training step (``step`` steps done so far) on batches from ``draw()``; the terms, scalars for one
        run and ``(size,)`` tensors for several."""

    def state(self, k: int) -> dict[str, Any]:
        """Member ``k``'s part of its checkpoint: model, optimiser(s) and noise generator states."""

    def weights(self, k: int) -> dict[str, torch.Tensor]:
        """Member ``k``'s model weights (its snapshots)."""

    def models(self) -> list[TrainableModel]:
        """The trained models, in eval mode, with their final weights."""


class OneRun:
    """One run's model and optimisers, built from its seed (the caller seeds torch first)."""

    def __init__(self, config: TrainConfig, device: torch.device):
        self.config, self.device = config, device
        self.model = build_model(config).to(device)
        self.loss_of = torch.compile(self.model.loss) if config.compile else self.model.loss
        self.optimizer = make_optimizer(config, self.model.vae_parameters())
        self.auxiliary = self.model.auxiliary_optimizer()  # FactorVAE's discriminator has its own
        self.label = f"{run_label(config)} s{config.seed}"

    def load_weights(self, k: int, weights: dict[str, torch.Tensor], path: Path, fix: str) -> None:
        load_weights(self.model, weights, path, fix)

    def load_state(self, k: int, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        if self.auxiliary is not None:
            self.auxiliary.load_state_dict(state["auxiliary_optimizer"])
        torch.set_rng_state(state["torch_rng"])
        if self.device.type == "cuda" and "device_rng" in state:  # the noise's generator there (not the CPU's)
            torch.cuda.set_rng_state(state["device_rng"], self.device)

    def start(self) -> None:
        self.model.train()

    def step(self, draw: Callable[[], torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        config, model = self.config, self.model
        x = draw()
        if hasattr(model, "set_step"):  # a schedule inside the loss (FactorVAE's γ warm-up)
            model.set_step(step)
        with numeric_precision(config.precision, self.device):
            terms = self.loss_of(x, beta=config.beta)
        self.optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        self.optimizer.step()
        if self.auxiliary is not None:  # Kim & Mnih's Algorithm 2: a second batch trains the discriminator
            x2 = draw()
            with numeric_precision(config.precision, self.device):
                terms.update(model.auxiliary_step(x2, self.auxiliary))
        return terms

    def state(self, k: int) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "torch_rng": torch.get_rng_state(),
                **({"device_rng": torch.cuda.get_rng_state(self.device)} if self.device.type == "cuda" else {}),
                **({"auxiliary_optimizer": self.auxiliary.state_dict()} if self.auxiliary is not None else {})}

    def weights(self, k: int) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def models(self) -> list[TrainableModel]:
        return [self.model.eval()]


def draw_batches(dataset, rngs: list[np.random.Generator], batch: int, device: torch.device) -> torch.Tensor:
    """The next batch of each run, each drawn from its own generator: ``(batch, C, H, W)`` for one run,
    ``(K, batch, C, H, W)`` for ``K``. A factor dataset renders the ``K`` batches in one call (an image depends
    on its factors only, so they are the batches drawn one by one)."""
    if len(rngs) == 1:
        return dataset.sample(batch, rngs[0], device=device)[0]
    if type(dataset).sample is FactorDataset.sample:
        images = dataset.images_on(np.concatenate([dataset.sample_factors(batch, rng) for rng in rngs]), device)
    else:
        images = torch.cat([dataset.sample(batch, rng, device=device)[0] for rng in rngs])
    return images.reshape(len(rngs), batch, *images.shape[1:])


def train(config: TrainConfig, run_dir: Path | str, device: str = "auto", progress: bool | None = None,
          dataset=None) -> dict[str, Any]:
    """Train (or resume) the run ``config`` in ``run_dir``; returns the final state dict.

    The returned dict has ``model`` (a ``VAE`` in eval mode, on ``device``), ``history`` (a list of
    logged rows) and ``config``. ``dataset``: the run's dataset if the caller built it already
    (``build_dataset(config)``). A model that cannot read the dataset's images is refused before
    ``run_dir`` is made.
    """
    run_dir = Path(run_dir)
    dataset, dev = prepare_training(config, [run_dir], device, dataset)
    torch.manual_seed(config.seed)  # after the data and their check: the model starts from the seed as ever
    return train_runs([config], [run_dir], OneRun(config, dev), dataset, dev, progress)[0]


def prepare_training(config: TrainConfig, run_dirs: list[Path], device: str, dataset=None):
    """What comes before the first step of runs of ``config``'s recipe: its precision and its model's fit to the
    data checked before anything is written (``dataset`` built if the caller has not), the run folders made,
    the device resolved, freed memory kept. Returns (dataset, device)."""
    check_precision(config.precision)  # before any work
    dataset = build_dataset(config) if dataset is None else dataset
    check_model_fits_data(config, data_image_shape(dataset))
    for run_dir in run_dirs:
        run_dir.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)
    keep_freed_memory()
    return dataset, dev


def train_runs(configs: list[TrainConfig], run_dirs: list[Path], runs: Runs, dataset, device: torch.device,
               progress: bool | None = None) -> list[dict[str, Any]]:
    """The training loop, for one run (:func:`train`) or several trained together (:mod:`dvae_core.ensemble`):
    run ``k`` has recipe ``configs[k]`` and checkpoint folder ``run_dirs[k]``, and ``runs`` holds the models.
    The runs share everything but their seed and β: steps, batch, log, checkpoint and snapshot cadence.
    Each run's data come from its own generator, its checkpoint and history are its own (in the layout
    :func:`train` always wrote), and all of them resume from one step. One result per run, as :func:`train`'s."""
    first = configs[0]
    several = len(configs) > 1
    rngs = [np.random.default_rng(c.seed) for c in configs]
    histories: list[list[dict[str, float]]] = [[] for _ in configs]
    # the logging window's running sums: a checkpoint between two log rows keeps them, so a resumed run logs
    # the same means as an uninterrupted one (its images/s and data share restart with the new process)
    sums: dict[str, torch.Tensor] = {}  # (runs,) float64 tensors on the device between log rows
    step, window_steps = 0, 0
    resumed_steps = []
    for k, (config, run_dir) in enumerate(zip(configs, run_dirs)):
        ckpt_path = run_dir / CHECKPOINT
        if not ckpt_path.exists():
            resumed_steps.append(None)
            continue
        state = load_checkpoint(ckpt_path)
        if canonical_json(state["config"]) != config.canonical():
            raise RuntimeError(f"{ckpt_path} belongs to another configuration: delete {run_dir} to retrain")
        fix = f"delete {run_dir} to retrain"
        runs.load_weights(k, state["model"], ckpt_path, f"{fix} (was the file copied over from another run?)")
        try:
            runs.load_state(k, state)
            rngs[k].bit_generator.state = json.loads(state["data_rng"])
            histories[k], step = json.loads(state["history"]), state["step"]
            window = json.loads(state.get("log_window", '{"sums": {}, "steps": 0}'))
            window_steps = window["steps"]
            for name, value in window["sums"].items():
                sums.setdefault(name, torch.zeros(len(configs), dtype=torch.float64, device=device))[k] = value
        except (KeyError, TypeError, ValueError, RuntimeError) as err:  # torch's messages here name no file
            raise RuntimeError(f"{ckpt_path} holds a damaged training state ({short_cause(err)}): {fix}") from None
        resumed_steps.append(step)
    if several and len(set(resumed_steps)) > 1:
        raise RuntimeError(f"the runs stand at different steps ({', '.join(str(s or 0) for s in resumed_steps)}) "
                           f"in {', '.join(str(d) for d in run_dirs)}: runs trained together resume from one step "
                           f"(train them alone, or dvae_core.ensemble.get_or_train_ensemble groups them by step)")
    runs.start()
    guard = FiniteGuard([f"run seed={c.seed} beta={c.beta}" for c in configs] if several else None)
    data_seconds = 0.0

    def draw() -> torch.Tensor:  # drawn on the training device
        nonlocal data_seconds
        t0 = time.perf_counter()
        x = draw_batches(dataset, rngs, first.batch_size, device)
        data_seconds += time.perf_counter() - t0
        return x

    def save() -> None:
        guard.check()
        for k, (config, run_dir) in enumerate(zip(configs, run_dirs)):
            window = {"sums": {name: float(value[k]) for name, value in sums.items()}, "steps": window_steps}
            atomic_torch_save({
                **runs.state(k), "step": step, "config": config.to_dict(), "history": json.dumps(histories[k]),
                "log_window": json.dumps(window), "data_rng": json.dumps(rngs[k].bit_generator.state),
            }, run_dir / CHECKPOINT)

    bar = tqdm(total=first.steps, initial=step, disable=not show_progress(progress), desc=runs.label,
               leave=False, mininterval=2.0)
    window_start, timed_steps = time.perf_counter(), 0
    while step < first.steps:
        try:
            terms = runs.step(draw, step)
        except Exception:  # an error a NaN caused a few steps after it arose: name the NaN
            guard.check()
            raise
        step += 1
        guard.watch(terms, step)
        for name, value in terms.items():  # summed on the device in float64: read only at log rows
            value = value.detach().reshape(len(configs)).to(torch.float64)
            sums[name] = sums[name] + value if name in sums else value + 0.0
        window_steps += 1
        timed_steps += 1
        bar.update(1)
        if step % first.log_every == 0 or step == first.steps:
            guard.check()
            elapsed = time.perf_counter() - window_start
            means = {name: (value / window_steps).tolist() for name, value in sums.items()}
            for k, history in enumerate(histories):
                history.append({"step": step, **{name: means[name][k] for name in means},
                                "images_per_s": timed_steps * first.batch_size / elapsed,
                                "data_fraction": data_seconds / elapsed, **({"ensemble": len(configs)} if several else {})})
            bar.set_postfix(loss=f"{histories[0][-1]['loss']:.1f}",
                            ips=f"{len(configs) * timed_steps * first.batch_size / elapsed:.0f}")
            sums, window_steps = {}, 0
            window_start, data_seconds, timed_steps = time.perf_counter(), 0.0, 0
        if first.snapshot_every and step % first.snapshot_every == 0:
            guard.check()
            for k, run_dir in enumerate(run_dirs):
                snapshot_path(run_dir, step).parent.mkdir(exist_ok=True)
                atomic_torch_save(runs.weights(k), snapshot_path(run_dir, step))
        if step % first.checkpoint_every == 0 or step == first.steps:
            save()
    bar.close()
    if step == 0 or not all((d / CHECKPOINT).exists() for d in run_dirs):
        save()
    return [{"model": model, "history": history, "config": config}
            for model, history, config in zip(runs.models(), histories, configs)]


def throughput(history: list[dict[str, float]]) -> float:
    """Median training images/s over the logged windows (the first one includes warm-up)."""
    rates = [row["images_per_s"] for row in history[1:] or history]
    return float(np.median(rates)) if rates else math.nan
