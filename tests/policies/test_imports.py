"""`policies` depends on numpy and vowpal_wabbit_next only, never on the layers above it."""

import ast
from pathlib import Path

from arbiter import policies

FORBIDDEN = {"grpc", "grpc_health", "grpc_reflection", "sqlalchemy", "arbiter.v1", "arbiter.server",
             "arbiter.log", "arbiter.cli"}
PACKAGE = Path(policies.__file__).parent


def _root(module: str) -> str:
    """``grpc.aio`` -> ``grpc``; inside the namespace, ``arbiter.server.app`` -> ``arbiter.server``."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "arbiter" else parts[0]


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(_root(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(_root(node.module))
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
