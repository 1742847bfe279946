"""Run ``arbiter serve`` as a real subprocess (where a signal or a crash is the point)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class ServerProcess:
    """``python -m arbiter.cli serve`` on a free port; ``target`` is what it printed it listens on."""

    def __init__(self, config: Path, db: str, *extra: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "arbiter.cli", "serve", "--listen", "127.0.0.1:0", "--db", db,
             "--config", str(config), *extra],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.first_line = self.proc.stdout.readline()
        if not self.first_line.startswith("arbiter listening on "):
            self.proc.kill()
            _, err = self.proc.communicate(timeout=10)
            raise RuntimeError(f"server did not start: {self.first_line!r} {err}")
        self.target = self.first_line.removeprefix("arbiter listening on ").strip()

    def stop(self, timeout: float = 60) -> tuple[int, str, str]:
        """SIGTERM, wait; returns (exit code, rest of stdout, stderr).

        A server that does not exit in time is asked for its thread stacks (SIGUSR1), killed,
        and reported with them.
        """
        self.proc.terminate()
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGUSR1)
            time.sleep(1)
            self.proc.kill()
            out, err = self.proc.communicate(timeout=30)
            raise AssertionError(f"server did not exit {timeout}s after SIGTERM:\n{err}") from None
        return self.proc.returncode, out, err

    def kill(self) -> None:
        self.proc.kill()
        self.proc.communicate(timeout=30)
