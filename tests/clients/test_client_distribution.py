"""``pip install ./clients/python`` alone: the client and the generated code, on grpcio and protobuf only.

A fresh virtualenv (no pip, no setuptools: only what the install brings) gets the client
distribution through the pip running these tests, and calls a real server from its own python.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from arbiter.server.app import App
from tests.conftest import count_rows

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CLIENT = "arbiter-grpc-client"
SOURCES = ({f"arbiter/client/{p.name}" for p in (ROOT / "clients/python/src/arbiter/client").iterdir()
            if p.suffix in {".py", ".typed"}}
           | {f"arbiter/v1/{p.name}" for p in (ROOT / "protos/arbiter/v1").iterdir()
              if p.suffix in {".py", ".pyi"}})

INSTALLED = """
import importlib.metadata, json
print(json.dumps({d.metadata["Name"]: {"requires": d.requires or [],
                                       "files": [str(f) for f in d.files or []]}
                  for d in importlib.metadata.distributions()}))
"""

CHOOSE_AND_REWARD = """
import json, sys
from arbiter.client import DecisionClient
with DecisionClient(sys.argv[1], timeout=10) as arbiter:
    choice = arbiter.choose("homepage", unit_id="user-42",
                            context={"user": {"country": "DE", "age": 31}},
                            actions=["a1", "a2", {"id": "a3", "features": {"item": {"price": 9.5}}}])
    result = arbiter.reward(choice.event_id, 1.0)
print(json.dumps({"action_id": choice.action_id, "probability": choice.probability,
                  "ranking": choice.ranking, "learned": result.learned}))
"""


@pytest.fixture(scope="module")
def client_python(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The python of a fresh venv into which only ``pip install ./clients/python`` went."""
    venv = tmp_path_factory.mktemp("client-venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
                    "--disable-pip-version-check", "--no-input", "./clients/python"],
                   cwd=ROOT, check=True)
    yield python


def run(python: Path, code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -I``: no current folder or PYTHONPATH, so nothing of the source tree is importable."""
    return subprocess.run([str(python), "-I", "-c", code, *args], cwd=python.parent,
                          capture_output=True, text=True, timeout=120)


def needs(requirements: list[str]) -> set[str]:
    """Names a distribution requires, without its extras."""
    return {canonicalize_name(r.name) for r in map(Requirement, requirements)
            if r.marker is None or r.marker.evaluate({"extra": ""})}


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """The server only needs to answer: SQLite is enough here."""
    return f"sqlite:///{tmp_path / 'arbiter.db'}"


def test_it_installs_the_client_and_protos_with_grpcio_and_protobuf_only(client_python: Path) -> None:
    listing = run(client_python, INSTALLED)
    assert listing.returncode == 0, listing.stderr
    installed = {canonicalize_name(name): dist for name, dist in json.loads(listing.stdout).items()}

    direct = needs(installed[CLIENT]["requires"])
    closure, todo = set(), list(direct)
    while todo:
        name = todo.pop()
        if name not in closure:
            closure.add(name)
            todo.extend(needs(installed[name]["requires"]))
    shipped = {f for f in installed[CLIENT]["files"] if f.startswith("arbiter/") and "__pycache__" not in f}

    assert direct == {"grpcio", "protobuf"}
    assert set(installed) == {CLIENT} | closure
    assert shipped == SOURCES  # exactly the source: no stale build output, no generated file missing


def test_nothing_of_the_server_side_is_importable(client_python: Path) -> None:
    for module in ("arbiter.server", "arbiter.policies", "arbiter.log", "arbiter.evaluation", "arbiter.cli"):
        result = run(client_python, f"import {module}")
        assert f"ModuleNotFoundError: No module named '{module}'" in result.stderr, (module, result.stderr)


def test_choose_and_reward_through_a_real_channel(client_python: Path, server: App) -> None:
    result = run(client_python, CHOOSE_AND_REWARD, f"127.0.0.1:{server.port}")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)

    assert answer["action_id"] in {"a1", "a2", "a3"}
    assert 0 < answer["probability"] <= 1
    assert answer["ranking"][0] == [answer["action_id"], answer["probability"]]
    assert sum(p for _, p in answer["ranking"]) == pytest.approx(1)
    assert answer["learned"]
    assert count_rows(server.settings.db) == {"decisions": 1, "rewards": 1, "learnings": 1}
