"""Run ``arbiter serve`` as a real subprocess (where a signal or a crash is the point)."""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class ServerProcess:
    """``python -m arbiter.cli serve`` on a free port; ``target`` is what it printed it listens on.

    ``processes`` > 1 runs ``--processes N``: ``proc`` is the supervisor, ``children()`` the
    servers it forked. Waits for the ready line at most ``start_timeout`` seconds.
    """

    def __init__(self, config: Path, db: str, *extra: str, processes: int = 1,
                 start_timeout: float = 60) -> None:
        self.processes = processes
        more = ["--processes", str(processes)] if processes != 1 else []
        if not db.startswith("sqlite") and "--secret-file" not in extra:
            from tests.postgres import secret_file

            more += ["--secret-file", secret_file()]  # PostgreSQL: every server's one secret
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "arbiter.cli", "serve", "--listen", "127.0.0.1:0", "--db", db,
             "--config", str(config), *more, *extra],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as ready:
            ready.register(self.proc.stdout, selectors.EVENT_READ)
            waited = ready.select(start_timeout)
        self.first_line = self.proc.stdout.readline() if waited else ""
        if not self.first_line.startswith("arbiter listening on "):
            self._kill_all()
            _, err = self.proc.communicate(timeout=10)
            raise RuntimeError(f"server did not start: {self.first_line!r} {err}")
        self.target = self.first_line.removeprefix("arbiter listening on ").strip()

    def children(self) -> list[int]:
        """The pids of the server's live child processes (``--processes``), from /proc."""
        return child_pids(self.proc.pid)

    def stop(self, timeout: float = 60) -> tuple[int, str, str]:
        """SIGTERM, wait; returns (exit code, rest of stdout, stderr).

        A server that does not exit in time is asked for its thread stacks (SIGUSR1), killed,
        and reported with them.
        """
        self.proc.terminate()
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for pid in [self.proc.pid, *self.children()]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGUSR1)
            time.sleep(1)
            self._kill_all()
            out, err = self.proc.communicate(timeout=30)
            raise AssertionError(f"server did not exit {timeout}s after SIGTERM:\n{err}") from None
        return self.proc.returncode, out, err

    def kill(self) -> None:
        self._kill_all()
        self.proc.communicate(timeout=30)

    def _kill_all(self) -> None:
        """SIGKILL the server and its children (stopped first, so that it forks no more)."""
        if self.processes == 1:
            self.proc.kill()
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGSTOP)
        for pid in self.children():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.kill()


def child_pids(parent: int) -> list[int]:
    """Live (not zombie) processes whose parent is ``parent``, from /proc (Linux)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path("/proc", entry, "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]  # after "(comm)", which may hold spaces
        if int(ppid) == parent and state != "Z":
            pids.append(int(entry))
    return sorted(pids)
