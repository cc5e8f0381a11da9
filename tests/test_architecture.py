"""The package's shape: no import cycles, infrastructure below everything, one registry of papers."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from dvae_core import papers
from dvae_core.train import TrainConfig

PACKAGE = Path(__file__).resolve().parent.parent / "dvae_core"
NOTEBOOKS = PACKAGE.parent / "notebooks"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module → the dvae_core modules it imports, at the top or inside a function (a lazy import is still a
    dependency), each with the packages that importing it runs (``a.b.c`` runs ``a.b``'s ``__init__``)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                # each package on the way is initialised first; a package's own submodules may import it
                while target:
                    if target != name and not name.startswith(target + "."):
                        graph[name].add(target)
                    target = target.rpartition(".")[0]
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph[node]):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_sees_a_cycle_through_a_lazy_import():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_dvae_core_has_no_import_cycle():
    assert cycles(import_graph()) == []


@pytest.mark.parametrize("low", ["dvae_core.infra", "dvae_core.claims", "dvae_core.metrics.fid"])
def test_infrastructure_metrics_and_claims_import_neither_the_loop_nor_the_store(low):
    graph = import_graph()
    reachable, todo = set(), [low]
    while todo:
        for succ in graph[todo.pop()] - reachable:
            reachable.add(succ)
            todo.append(succ)
    assert not reachable & {"dvae_core.train", "dvae_core.runs", "dvae_core.sweep"}, sorted(reachable)
    if low == "dvae_core.infra":
        assert reachable == set()


def test_every_notebook_belongs_to_a_registered_paper_with_a_chapter():
    for notebook in sorted(NOTEBOOKS.glob("*.ipynb")):
        owner = papers.paper_of_notebook(notebook.stem)
        assert owner is not None, f"{notebook.name} belongs to no paper in dvae_core.papers.PAPERS"
        assert (PACKAGE.parent / f"{owner.chapter}.md").exists()
    toc = (PACKAGE.parent / "_toc.yml").read_text()
    assert [p.chapter for p in papers.PAPERS] == [line.split("file:")[1].strip() for line in toc.splitlines()
                                                  if line.strip().startswith("- file: book/")][:len(papers.PAPERS)]


@pytest.mark.parametrize("entry", papers.PAPERS, ids=lambda p: p.key)
def test_every_experiment_module_keeps_the_contract(entry):
    for name in entry.experiments:
        module = entry.module(name or None)
        if not hasattr(module, "PROFILES"):  # a helper module of the chapter (geometry, explorer)
            continue
        assert set(module.PROFILES) == {"smoke", "preview", "paper"}, module.__name__
        for profile in module.PROFILES:
            assert module.profile(profile) == module.PROFILES[profile]
            assert module.profile(profile, seed_offset=0) == module.PROFILES[profile]
        with pytest.raises(ValueError, match="unknown profile"):
            module.profile("huge")
    lead = entry.lead_module()
    assert lead.PAPER == entry.citation
    for model in lead.BENCH_MODELS.values():
        for profile in ("smoke", "preview", "paper"):
            assert isinstance(model.config(profile), TrainConfig)
            assert model.config(profile) == model.config(profile)


def test_the_registry_finds_papers_and_refuses_unknown_ones():
    assert papers.paper("vlae").module().__name__ == "dvae_core.papers.vlae"
    assert papers.paper_of_notebook("fvae_tc").key == "factorvae"
    assert papers.paper_of_notebook("scratch") is None
    with pytest.raises(KeyError, match="sbd, factorvae, rae, vlae"):
        papers.paper("gan")
    assert list(papers.bench_models()) == ["sb_vae", "deconv_vae", "factor_vae", "rae", "vlae"]


def test_the_public_names_readers_use_still_import():
    for module, names in {
        "dvae_core.models": ["VAE", "VAEConfig", "SpatialBroadcastDecoder", "FactorVAEConfig", "permute_dims"],
        "dvae_core.metrics": ["mig", "factor_vae_score", "beta_vae_score", "fid", "importance_weighted_nll"],
        "dvae_core.data": ["make_dataset", "DATASETS"],
    }.items():
        imported = importlib.import_module(module)
        assert all(hasattr(imported, name) for name in names), module


def test_the_cli_prints_a_registered_recipe_it_can_read_back(capsys):
    import json

    from dvae_core.cli import config_from_dict, main, run_main

    assert run_main(main, ["--recipe", "rae", "--profile", "smoke"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert config_from_dict(printed) == papers.bench_models()["rae"].config("smoke")
    assert run_main(main, ["--recipe", "gan"]) == 2
    assert "choose one of sb_vae, deconv_vae, factor_vae, rae, vlae" in capsys.readouterr().err


def test_every_registered_run_builds_a_model_that_keeps_the_loop_contract():
    from dvae_core.train import AuxiliaryTrainedModel, TrainableModel, build_model

    for name, entry in papers.bench_models().items():
        model = build_model(entry.config("smoke"))
        assert isinstance(model, TrainableModel), name
        if model.auxiliary_optimizer() is not None:
            assert isinstance(model, AuxiliaryTrainedModel), name
