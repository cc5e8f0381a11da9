"""FactorVAE as a model kind: recipes of the older layout still read, stored runs move to their new names, and
the store never serves a checkpoint under a recipe it was not trained with."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
import torch

from dvae_core import runs
from dvae_core.cli import config_from_dict, main, run_main
from dvae_core.infra import atomic_torch_save, canonical_json
from dvae_core.models import FactorVAE, FactorVAEConfig, FactorVAEModelConfig
from dvae_core.train import CHECKPOINT, TrainConfig, build_model, load_checkpoint, upgrade_recipe
from test_train import params, tiny_config

FACTOR = FactorVAEConfig(gamma=5.0, disc_hidden=16, disc_layers=2, disc_lr=1e-3)


def factor_config(**overrides) -> TrainConfig:
    return tiny_config(model=FactorVAEModelConfig.of(tiny_config().model, FACTOR), steps=6, **overrides)


def legacy_recipe(config: TrainConfig) -> dict:
    """The recipe as it was recorded before the kind existed: a VAE model and the TC term beside it."""
    recipe = config.to_dict()
    model = recipe["model"]
    factor_fields = set(FactorVAEConfig.__dataclass_fields__)
    recipe["model"] = {k: v for k, v in model.items() if k not in factor_fields and k != "kind"}
    recipe["factor_vae"] = {k: v for k, v in model.items() if k in factor_fields}
    return recipe


def test_the_kind_holds_the_vae_and_the_tc_term_and_builds_a_factor_vae():
    config = factor_config()
    assert config.model.kind == "factor_vae" and config.model.decoder == "deconv" and config.model.gamma == 5.0
    assert config.model.vae == tiny_config().model and config.model.factor == FACTOR
    model = build_model(config)
    assert isinstance(model, FactorVAE) and model.factor == FACTOR
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_a_recipe_of_the_older_layout_reads_as_the_same_run():
    config = factor_config()
    old = legacy_recipe(config)
    assert "factor_vae" in old and "kind" not in old["model"]
    assert TrainConfig.from_dict(old) == config
    assert config_from_dict(json.loads(json.dumps(old))) == config
    assert upgrade_recipe(config.to_dict()) == config.to_dict()  # today's layout is left alone


def test_migrate_store_moves_old_runs_to_their_new_names_with_the_same_weights(tmp_path, capsys):
    config = factor_config()
    trained = runs.get_or_train(config, tmp_path, device="cpu", progress=False)
    new_dir = runs.run_dir(config, tmp_path)
    # rewrite it as the older code recorded it: its recipe, its checkpoint's recipe, its folder name
    old = legacy_recipe(config)
    old_dir = tmp_path / hashlib.sha256(canonical_json(old).encode()).hexdigest()[:16]
    state = load_checkpoint(new_dir / CHECKPOINT)
    state["config"] = old
    atomic_torch_save(state, new_dir / CHECKPOINT)
    (new_dir / "config.json").write_text(json.dumps(old, indent=1))
    new_dir.rename(old_dir)
    plain = tiny_config(steps=2)  # a VAE's recipe has not changed: it stays where it is
    runs.get_or_train(plain, tmp_path, device="cpu", progress=False)

    assert runs.load_run(config, tmp_path, device="cpu") is None  # not found under the new name yet
    assert run_main(main, ["--migrate-store", "--store", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == f"{old_dir.name} -> {new_dir.name}"
    assert not old_dir.exists() and new_dir.exists() and runs.load_run(plain, tmp_path, device="cpu") is not None
    moved = runs.load_run(config, tmp_path, device="cpu")
    assert torch.equal(params(moved["model"]), params(trained["model"]))
    assert json.loads((new_dir / "config.json").read_text()) == json.loads(json.dumps(config.to_dict()))
    assert runs.migrate_store(tmp_path) == []  # idempotent


def test_migrate_store_refuses_to_overwrite_a_run(tmp_path):
    config = factor_config()
    runs.get_or_train(config, tmp_path, device="cpu", progress=False)
    new_dir = runs.run_dir(config, tmp_path)
    copy = tmp_path / "0123456789abcdef"
    shutil.copytree(new_dir, copy)
    with pytest.raises(RuntimeError, match="exists already"):
        runs.migrate_store(tmp_path)
    assert copy.exists() and new_dir.exists()


def test_a_checkpoint_of_another_configuration_is_never_served(tmp_path):
    a, b = tiny_config(steps=4), tiny_config(steps=4, seed=9)
    runs.get_or_train(a, tmp_path, device="cpu", progress=False)
    runs.get_or_train(b, tmp_path, device="cpu", progress=False)
    shutil.copy(runs.run_dir(b, tmp_path) / CHECKPOINT, runs.run_dir(a, tmp_path) / CHECKPOINT)
    with pytest.raises(RuntimeError, match="another configuration.*delete"):
        runs.load_run(a, tmp_path, device="cpu")
    longer = tiny_config(steps=6)
    runs.get_or_train(longer, tmp_path, device="cpu", progress=False)
    shutil.copy(runs.run_dir(longer, tmp_path) / CHECKPOINT, runs.run_dir(a, tmp_path) / CHECKPOINT)
    with pytest.raises(RuntimeError, match="another configuration"):  # more steps than asked is another run too
        runs.get_or_train(a, tmp_path, device="cpu", progress=False)
