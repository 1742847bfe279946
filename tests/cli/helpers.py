"""Run the ``arbiter`` command as a real subprocess (``python -m arbiter.cli``), bounded in time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.process import ROOT


def arbiter(*args: str, cwd: Path = ROOT, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "arbiter.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single line the command wrote on stderr (asserted: one line, no traceback)."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]
