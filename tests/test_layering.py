"""The layering of DESIGN.md's component table: ``[tool.importlinter]`` in pyproject.toml.

The tree keeps every contract (as ``make lint`` runs it), every module of every layer is in the
graph the contracts are checked on (a contract over an empty graph keeps trivially), and each
contract breaks when one forbidden import is added to a copy of the tree.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
LAYERS: list[str] = CONFIG["root_packages"]
CONTRACTS: dict[str, str] = {contract["id"]: contract["name"] for contract in CONFIG["contracts"]}

# One import per contract that only that contract forbids: (contract id, layer, import line).
VIOLATIONS = [
    ("policies", "policies", "import grpc"),
    ("server-evaluation", "server", "import arbiter.evaluation"),
    ("log", "log", "import arbiter.v1"),
    ("client", "client", "import arbiter.server"),
    ("protos", "v1", "import arbiter.client"),
    ("cli", "log", "import arbiter.cli"),
]


def lint_imports(cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / "lint-imports"), str(ROOT / "pyproject.toml"), "--no-cache"]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def layer_dir(layer: str) -> Path:
    spec = importlib.util.find_spec(layer)
    assert spec is not None and spec.submodule_search_locations, f"{layer} is not an importable package"
    return Path(next(iter(spec.submodule_search_locations)))


def modules_on_disk(layer: str) -> set[str]:
    """Every module of ``layer``: its ``*.py`` files in package folders (with ``__init__.py``)."""
    base = layer_dir(layer)
    modules = set()
    for path in base.rglob("*.py"):
        parts = path.relative_to(base).with_suffix("").parts
        if all((base.joinpath(*parts[:depth]) / "__init__.py").is_file() for depth in range(len(parts))):
            modules.add(".".join((layer, *(parts[:-1] if parts[-1] == "__init__" else parts))))
    return modules


def test_the_tree_keeps_every_layering_contract() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in result.stdout


def test_the_contracts_see_every_module_of_every_layer() -> None:
    graph = grimp.build_graph(*LAYERS, include_external_packages=True, cache_dir=None)
    for layer in LAYERS:
        on_disk = modules_on_disk(layer)
        assert on_disk, f"no modules found for {layer}"
        assert on_disk <= graph.modules, f"{layer}: not analysed: {sorted(on_disk - graph.modules)}"


def test_every_contract_has_a_violation_case() -> None:
    assert {contract for contract, _, _ in VIOLATIONS} == set(CONTRACTS)


@pytest.mark.parametrize(("contract", "layer", "line"), VIOLATIONS, ids=[v[0] for v in VIOLATIONS])
def test_a_forbidden_import_breaks_its_contract(tmp_path: Path, contract: str, layer: str, line: str) -> None:
    for name in LAYERS:  # a copy of the namespace, links resolved, that shadows the installed one
        shutil.copytree(layer_dir(name), tmp_path / "arbiter" / name.removeprefix("arbiter."),
                        ignore=shutil.ignore_patterns("__pycache__"))
    with (tmp_path / "arbiter" / layer / "__init__.py").open("a") as init:
        init.write(f"\n{line}\n")

    result = lint_imports(tmp_path, env={**os.environ, "PYTHONPATH": str(tmp_path)})

    assert result.returncode != 0, result.stdout + result.stderr
    assert f"{CONTRACTS[contract]} BROKEN" in result.stdout, result.stdout
