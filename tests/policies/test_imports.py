"""`policies` depends on numpy and vowpal_wabbit_next only, never on the layers above it."""

import ast
from pathlib import Path

import policies

FORBIDDEN = {"grpc", "grpc_health", "grpc_reflection", "sqlalchemy", "protos", "server"}
PACKAGE = Path(policies.__file__).parent


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_policies_import_none_of_grpc_sqlalchemy_protos_server() -> None:
    modules = sorted(PACKAGE.rglob("*.py"))
    assert modules, "no modules found in policies/"
    offending = {
        str(path.relative_to(PACKAGE)): sorted(imported_roots(path) & FORBIDDEN)
        for path in modules
        if imported_roots(path) & FORBIDDEN
    }
    assert offending == {}
