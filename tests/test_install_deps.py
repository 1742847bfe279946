"""scripts/install-deps.sh, what `make test` and .ci/run install with: checks first, apt-get
update once then one install, and the one command every skip message names.

Run on a PATH of stand-ins (a fake ``apt-get`` that records its calls, an ``id`` that says
root), so nothing is installed and the outcome does not depend on this machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.clients_live.test_clients import INSTALL
from tests.cluster.test_load_balancing import INSTALL_NGINX
from tests.postgres import HOW_TO_ENABLE
from tests.process import ROOT

SCRIPT = ROOT / "scripts" / "install-deps.sh"
COMMAND = "sudo bash scripts/install-deps.sh"
# What the script runs besides apt-get, dpkg-query and the languages' own tools.
TOOLS = ("bash", "sed", "tr", "grep", "dirname", "awk", "paste", "make", "cat")


def fake_path(tmp_path: Path, *, root: bool) -> tuple[str, Path]:
    """A PATH with the basic tools, an ``id`` that answers root or not, and an ``apt-get``
    that appends its arguments to the returned file. No node, npm, javac or dpkg-query: every
    Debian package of the parts asked for counts as missing."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found is not None, tool
        (bin_dir / tool).symlink_to(found)
    calls = tmp_path / "apt-get.calls"
    (bin_dir / "apt-get").write_text(f'#!/bin/sh\necho "$*" >> {calls}\n')
    (bin_dir / "id").write_text(f"#!/bin/sh\necho {0 if root else 1000}\n")
    for stub in ("apt-get", "id"):
        (bin_dir / stub).chmod(0o755)
    return str(bin_dir), calls


def run(path: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": path, "PYTHON": "/nonexistent/python3"}
    env.pop("SUDO_USER", None)
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True,
                          timeout=60, check=False)


def test_as_root_it_updates_once_then_installs_what_is_missing_in_one_call(
        tmp_path: Path) -> None:
    path, calls = fake_path(tmp_path, root=True)

    result = run(path, "python", "java")

    assert result.returncode == 0, result.stderr
    update, install = calls.read_text().splitlines()
    assert update == "update -qq"
    assert install.startswith("install -y -qq --no-install-recommends python3-venv ")
    packages = install.split()[4:]
    assert {"default-jdk-headless", "libgrpc-java", "protobuf-compiler"} <= set(packages)
    assert len(packages) == len(set(packages))  # protobuf-compiler once, though Go and Java want it


def test_without_root_it_names_what_is_missing_and_the_one_command_and_installs_nothing(
        tmp_path: Path) -> None:
    path, calls = fake_path(tmp_path, root=False)

    auto = run(path, "--auto", "python", "node")  # what `make test` runs: the run goes on
    check = run(path, "--check", "python", "node")
    install = run(path, "python", "node")

    assert auto.returncode == 0 and check.returncode == 1 and install.returncode == 1
    assert "python3-venv nodejs npm" in auto.stderr
    assert "the Node client's tests skip" in auto.stderr
    for result in (auto, check, install):
        assert COMMAND in result.stderr
    assert not calls.exists()


def test_with_everything_there_it_does_nothing(tmp_path: Path) -> None:
    path, calls = fake_path(tmp_path, root=True)

    result = subprocess.run(["bash", str(SCRIPT), "python"], capture_output=True, text=True,
                            env={**os.environ, "PATH": path, "PYTHON": sys.executable},
                            timeout=60, check=False)

    assert result.returncode == 0, result.stderr
    assert "everything is installed" in result.stdout
    assert not calls.exists()


def test_every_skip_and_failure_message_names_the_same_command() -> None:
    assert f'COMMAND="{COMMAND}"' in SCRIPT.read_text()
    assert INSTALL == COMMAND
    assert COMMAND in HOW_TO_ENABLE
    assert COMMAND in INSTALL_NGINX
