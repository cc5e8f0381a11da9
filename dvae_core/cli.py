"""Train runs from the command line: ``python -m dvae_core.cli CONFIG.json [...]``.

Each CONFIG file holds one :class:`~dvae_core.train.TrainConfig` as a JSON object (the format of
``runs/<hash>/config.json``; ``model`` and the other parts may be left out for their defaults), or a
list of them. Every run is trained into the run store, or reused if it is already there, or
resumed from its last checkpoint if an earlier attempt was interrupted (killed, out of time): just
run the same command again. Prints one run folder per config on stdout, in order; progress and
"resuming … from step N" go to stderr.

    python -m dvae_core.cli run.json --store /scratch/runs --device cuda
    python -m dvae_core.cli grid.json --jobs 2                     # a list of configs, 2 processes
    python -m dvae_core.cli grid.json --ensemble 8 --device cuda   # up to 8 runs of one architecture as one model
    python -m dvae_core.cli grid.json --scheduler tcp://scheduler:8786   # on a Dask cluster
    python -m dvae_core.cli --recipe sb_vae --profile paper > sb.json     # a registered paper's run, as JSON
    python -m dvae_core.cli --migrate-store                               # rename runs of older recipe layouts

Expected failures (a bad config, a model that cannot read its dataset's images, a damaged checkpoint,
a missing or damaged data file, a NaN loss) end with a single ``error: …`` line on stderr that says
what to fix, no traceback, and exit status 2 for bad input (the config or the arguments) or 1 for a
run that failed. Nothing half-written is left: every recipe is checked against its data before any
run trains (a refused one makes no run folder), checkpoints are replaced atomically, and a run that
fails before its first checkpoint leaves no files but its lock.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import math
import sys
from pathlib import Path
from typing import Any, Callable

EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED = 2, 1, 130


class ConfigError(ValueError):
    """A configuration file that cannot describe a run."""


# ----------------------------------------------------------------------------------- config parsing


def _kind(default: Any) -> tuple[tuple[type, ...], str] | None:
    """Accepted JSON types for a field, from its default value (None: anything goes)."""
    if isinstance(default, bool):
        return (bool,), "true or false"
    if isinstance(default, int):
        return (int,), "a whole number"
    if isinstance(default, float):
        return (int, float), "a number"
    if isinstance(default, str):
        return (str,), "a string"
    if isinstance(default, (tuple, list)):
        return (list,), "a list"
    if isinstance(default, dict):
        return (dict,), "an object"
    return None


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return field.default_factory()  # type: ignore[misc]
    return None


def _checked(data: Any, cls: type, what: str, source: str, nested: dict[str, type] | None = None) -> dict[str, Any]:
    """``data`` as keyword arguments for dataclass ``cls``: unknown keys and wrong types are errors
    that list the valid parameters; lists become tuples where the field holds a tuple."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {what} must be a JSON object of parameters, got {json.dumps(data)[:60]}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    out = {}
    for key, value in data.items():
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"{source}: unknown {what} {key!r}{hint}; valid: {', '.join(fields)}")
        if nested and key in nested:
            if value is None and _default(fields[key]) is not None:
                raise ConfigError(f"{source}: {what} {key!r} must be an object of {key} parameters, got null")
            out[key] = None if value is None else nested[key](**_checked(value, nested[key], f"{key} parameter", source))
            continue
        default = _default(fields[key])
        kind = _kind(default)
        if kind is not None and value is not None and (
                not isinstance(value, kind[0]) or (isinstance(value, bool) and bool not in kind[0])):
            raise ConfigError(f"{source}: {what} {key!r} must be {kind[1]}, got {json.dumps(value)[:60]}")
        out[key] = tuple(value) if isinstance(default, tuple) and isinstance(value, list) else value
    return out


def config_from_dict(data: Any, source: str = "config"):
    """A :class:`TrainConfig` from parsed JSON, refusing unknown parameters, wrong types, an unknown
    dataset or decoder with a message that lists the valid choices."""
    from dvae_core.data import DATASETS
    from dvae_core.models import DECODERS
    from dvae_core.train import MODEL_CONFIGS, TrainConfig, upgrade_recipe

    if isinstance(data, dict) and "factor_vae" in data:  # a recipe from before FactorVAE was a model kind
        for part in ("factor_vae", "model"):
            if not isinstance(data.get(part, {}), dict):
                raise ConfigError(f"{source}: {part!r} must be a JSON object of parameters, "
                                  f"got {json.dumps(data[part])[:60]}")
        data = upgrade_recipe(data)
    model = data.get("model") if isinstance(data, dict) else None
    kind = model.get("kind", "vae") if isinstance(model, dict) else "vae"
    if kind not in MODEL_CONFIGS:
        raise ConfigError(f"{source}: unknown model kind {kind!r}; choose one of {', '.join(sorted(MODEL_CONFIGS))}")
    kwargs = _checked(data, TrainConfig, "parameter", source,
                      nested={"model": MODEL_CONFIGS[kind]})
    try:
        config = TrainConfig(**kwargs)
    except ValueError as err:  # a model config's own check (e.g. an unknown RAE variant)
        raise ConfigError(f"{source}: {err}") from None
    if config.dataset not in DATASETS:
        close = difflib.get_close_matches(config.dataset, DATASETS, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(f"{source}: unknown dataset {config.dataset!r}{hint}; choose one of {', '.join(sorted(DATASETS))}")
    if kind in ("vae", "factor_vae") and config.model.decoder not in DECODERS:
        raise ConfigError(f"{source}: unknown decoder {config.model.decoder!r}; choose one of {', '.join(DECODERS)}")
    for name in ("steps", "batch_size", "checkpoint_every", "log_every"):
        if getattr(config, name) < 1:
            raise ConfigError(f"{source}: parameter {name!r} must be at least 1, got {getattr(config, name)}")
    if not 0 <= config.seed < 2 ** 63:
        raise ConfigError(f"{source}: parameter 'seed' must be a whole number from 0 to 2**63 - 1, got {config.seed}")
    if not (math.isfinite(config.lr) and config.lr > 0):
        raise ConfigError(f"{source}: parameter 'lr' must be a finite number above 0, got {config.lr}")
    for name in ("latent_dim", "code_dim"):
        value = getattr(config.model, name, None)
        if value is not None and value < 1:
            raise ConfigError(f"{source}: model parameter {name!r} must be at least 1, got {value}")
    resolution = config.dataset_kwargs.get("resolution")
    if resolution is not None and (isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1):
        raise ConfigError(f"{source}: dataset_kwargs 'resolution' must be a whole number of pixels, got "
                          f"{json.dumps(resolution)[:60]}")
    return config


def registered_recipe(name: str, profile: str):
    """The TrainConfig of run ``name`` of a registered paper (:func:`dvae_core.papers.bench_models`)."""
    from dvae_core.papers import bench_models
    from dvae_core.profiles import check_profile

    models = bench_models()
    if name not in models:
        raise ConfigError(f"--recipe: unknown run {name!r}; choose one of {', '.join(models)}")
    return models[name].config(check_profile(profile))


def check_models_fit_data(configs: list) -> None:
    """Every config's model reads its dataset's images (:func:`dvae_core.train.check_model_fits_data`), checked
    before a sweep trains any of them, so a grid with one bad recipe fails at once, not after the good runs.
    Each distinct dataset recipe is built once, and only its image shape is kept."""
    from dvae_core.infra import canonical_json
    from dvae_core.runs import config_hash
    from dvae_core.sweep import describe
    from dvae_core.train import build_dataset, check_model_fits_data, data_image_shape

    shapes: dict[str, tuple[int, ...]] = {}
    for config in configs:
        key = canonical_json({"dataset": config.dataset, "dataset_kwargs": config.dataset_kwargs})
        if key not in shapes:
            shapes[key] = data_image_shape(build_dataset(config))
        try:
            check_model_fits_data(config, shapes[key])
        except ValueError as err:
            raise ValueError(f"run {config_hash(config)} ({describe(config)}): {err}") from None


def load_configs(path: Path) -> list:
    """The configs in one JSON file (an object, or a list of objects)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} not found: give the path of a JSON TrainConfig") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path} is not valid JSON ({err}): fix the file") from None
    items = data if isinstance(data, list) else [data]
    if not items:
        raise ConfigError(f"{path} holds an empty list: give at least one config")
    return [config_from_dict(item, f"{path}" + (f"[{i}]" if isinstance(data, list) else ""))
            for i, item in enumerate(items)]


# ------------------------------------------------------------------------------------- entry points


def one_line(err: BaseException) -> str:
    """An exception's message on one line (library messages end with the fix)."""
    return " ".join(str(err).split()) or type(err).__name__


def run_main(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Call a CLI ``main``; the library's expected errors become one ``error: …`` line on stderr and an
    exit status (2 bad input, 1 failed run, 130 interrupted) instead of a traceback."""
    from dvae_core.train import NonFiniteLossError

    try:
        return main(argv)
    except KeyboardInterrupt:
        print("error: interrupted; run the same command again to resume from the last checkpoint", file=sys.stderr)
        return EXIT_INTERRUPTED
    except ValueError as err:  # bad input: config, arguments, dataset or device names
        print(f"error: {one_line(err)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (OSError, RuntimeError, NonFiniteLossError) as err:  # the run failed: data file, checkpoint, NaN
        print(f"error: {one_line(err)}", file=sys.stderr)
        return EXIT_FAILED


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dvae_core.cli", description=__doc__.split("\n\n")[0])
    parser.add_argument("configs", nargs="*", type=Path, metavar="CONFIG.json",
                        help="a JSON TrainConfig, or a list of them")
    parser.add_argument("--recipe", metavar="NAME",
                        help="print the JSON TrainConfig of a registered paper's representative run (the runs "
                             "dvae_core.bench times, e.g. sb_vae) at --profile, and train nothing")
    parser.add_argument("--profile", default="preview", help="the profile of --recipe (default preview)")
    parser.add_argument("--migrate-store", action="store_true",
                        help="move runs recorded under an older recipe layout (FactorVAE before it was a model kind) "
                             "to their current names in --store, and train nothing")
    parser.add_argument("--store", type=Path, help="the run store (default: $DVAE_RUNS or <repo>/runs)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    parser.add_argument("--jobs", type=int, help="parallel local processes for several configs (default $DVAE_JOBS or 1)")
    parser.add_argument("--ensemble", type=int,
                        help="the most runs that differ only in seed and beta trained together as one vectorised "
                             "model (default $DVAE_ENSEMBLE or 1: every run alone)")
    parser.add_argument("--scheduler", help="a Dask scheduler address, e.g. tcp://scheduler:8786 (store on a shared path)")
    parser.add_argument("--threads", type=int, help="torch threads in this process (default: torch's)")
    args = parser.parse_args(argv)

    if args.recipe is not None:
        print(json.dumps(registered_recipe(args.recipe, args.profile).to_dict(), indent=1, default=list))
        return 0
    if args.migrate_store:
        from dvae_core import runs
        from dvae_core.infra import default_store

        moved = runs.migrate_store(args.store or default_store())
        for old, new in moved:
            print(f"{old} -> {new}")
        print(f"{len(moved)} run(s) moved", file=sys.stderr)
        return 0
    if not args.configs:
        parser.error("give one or more CONFIG.json files (or --recipe NAME)")
    configs = [config for path in args.configs for config in load_configs(path)]

    import torch

    from dvae_core import runs
    from dvae_core.infra import default_store, resolve_device
    from dvae_core.sweep import describe, run_sweep
    from dvae_core.train import CHECKPOINT, load_checkpoint

    resolve_device(args.device)  # an unknown or absent device fails before anything is written
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads {args.threads}: give 1 or more")
        torch.set_num_threads(args.threads)
    if args.ensemble is not None and args.ensemble < 1:
        raise ValueError(f"--ensemble {args.ensemble}: give 1 (every run alone) or more")
    store = (args.store or default_store()).resolve()
    to_train = []
    for config in configs:
        checkpoint = runs.run_dir(config, store) / CHECKPOINT
        state = "new"
        if checkpoint.exists():
            step = load_checkpoint(checkpoint)["step"]  # a damaged checkpoint is an error here already
            state = "finished" if step >= config.steps else f"resuming from step {step} of {config.steps}"
        if state != "finished":
            to_train.append(config)
        print(f"run {runs.config_hash(config)} ({describe(config)}): {state}", file=sys.stderr, flush=True)

    if len(configs) == 1 and args.jobs in (None, 1) and not args.scheduler and args.ensemble in (None, 1):
        runs.get_or_train(configs[0], store, device=args.device)  # checks the model fits the data first
    elif args.scheduler:
        check_models_fit_data(to_train)  # here: a sweep's workers would meet a bad recipe after the good runs
        from distributed import Client

        with Client(args.scheduler) as client:
            run_sweep(configs, executor=client.get_executor(), store=store, device=args.device, ensemble=args.ensemble)
    else:
        check_models_fit_data(to_train)
        run_sweep(configs, jobs=args.jobs, store=store, device=args.device, ensemble=args.ensemble)
    for config in configs:
        print(runs.run_dir(config, store))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
