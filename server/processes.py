"""Pre-forked servers on one port (``arbiter serve --processes N``) and the supervisor over them.

The supervisor reserves the port first: a bound (not listening) ``SO_REUSEPORT`` socket that it
holds until it exits, so ``--listen HOST:0`` works and a restarted child gets the same port back.
Then it forks N children, each running a whole server (``serve``) bound to that port with
``SO_REUSEPORT``; the kernel spreads new connections over the children that listen. The fork
happens before any gRPC object exists in the supervisor (gRPC's core does not survive a fork, see
gRPC's ``examples/python/multiprocessing``); this module is process management only: fork, one
readiness pipe per child, signals, restarts. It never imports gRPC.

- **Ready.** A child writes one byte to its pipe when ``serve`` calls ``ready()`` (after the server
  restored and serves). When all N are ready at once the first time, ``announce(HOST:PORT)`` runs,
  once; children never announce.
- **Restart.** A child that dies is logged (pid, exit status) and started again. A death before
  the child was ready, or within ``quick_seconds`` of it, is quick; restarts after quick deaths
  wait 0.5 s, 1 s, 2 s ... (at most 10 s), and ``give_up_deaths`` quick deaths within
  ``give_up_window`` seconds (a broken database URL, a port someone else holds) stop everything
  and ``supervise`` returns 1 instead of spinning.
- **Reload.** SIGHUP is passed on to every child (each reloads its token file).
- **Exits.** ``on_exit(pid)`` runs for every child reaped (e.g. to drop its metrics' gauges);
  the descriptors in ``close_in_child`` (e.g. the supervisor's metrics endpoint) are closed in
  every child right after the fork.
- **Stop.** SIGTERM or SIGINT: SIGTERM to every child, each drains on its own (health
  NOT_SERVING, in-flight calls finish, the writer drains); ``supervise`` returns 0 once all have
  exited cleanly, 1 if one did not.

Children get SIGTERM when the supervisor dies (``PR_SET_PDEATHSIG`` on Linux), so even a
``kill -9`` of the supervisor leaves no server behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import selectors
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import NoReturn

log = logging.getLogger(__name__)

# ``serve(listen, ready)`` runs in a child: bind ``listen`` with SO_REUSEPORT, call ``ready()``
# once serving, return the exit code after SIGTERM/SIGINT stopped it.
Serve = Callable[[str, Callable[[], None]], int]

_HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGHUP)
_PR_SET_PDEATHSIG = 1


def supervise(processes: int, listen: str, serve: Serve, *, announce: Callable[[str], None],
              on_exit: Callable[[int], None] = lambda _pid: None,
              close_in_child: Sequence[int] = (),
              quick_seconds: float = 10.0, give_up_deaths: int = 5, give_up_window: float = 60.0,
              first_backoff: float = 0.5, max_backoff: float = 10.0) -> int:
    """Run ``processes`` children of ``serve`` on ``listen``'s port until SIGTERM/SIGINT; exit code."""
    if processes < 1:
        raise ValueError(f"processes must be >= 1, got {processes}")
    try:
        sockets, address = reserve_port(listen)
    except (OSError, ValueError) as error:
        print(f"arbiter: cannot listen on {listen}: {error}", file=sys.stderr)
        return 1
    supervisor = _Supervisor(processes, address, serve, announce, sockets, on_exit,
                             tuple(close_in_child), quick_seconds=quick_seconds,
                             give_up_deaths=give_up_deaths, give_up_window=give_up_window,
                             first_backoff=first_backoff, max_backoff=max_backoff)
    try:
        return supervisor.run()
    finally:
        for sock in sockets:
            sock.close()


def reserve_port(listen: str) -> tuple[list[socket.socket], str]:
    """Bind ``HOST:PORT`` (port 0: a free one) with SO_REUSEPORT, without listening.

    Returns the sockets (one per address ``HOST`` resolves to; keep them open to keep the port)
    and ``HOST:PORT`` with the port actually bound, for the children to bind too.
    """
    host, colon, port_text = listen.rpartition(":")
    if not colon or not port_text.isdigit():
        raise ValueError(f"expected HOST:PORT, got {listen!r}")
    name = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    port = int(port_text)
    sockets: list[socket.socket] = []
    try:
        infos = socket.getaddrinfo(name or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
        for number, (family, kind, proto, _, sockaddr) in enumerate(infos):
            sock = socket.socket(family, kind, proto)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                sock.bind((sockaddr[0], port, *sockaddr[2:]))
            except OSError:
                sock.close()
                if number == 0:
                    raise
                continue  # e.g. ::1 of `localhost` on a host without IPv6: gRPC skips it too
            if number == 0:
                port = sock.getsockname()[1]
            sockets.append(sock)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets, f"{host}:{port}"


@dataclass
class _Child:
    slot: int
    pid: int
    started: float
    ready_fd: int | None  # the read end of its readiness pipe, until it is ready or gone
    ready_at: float | None = None


@dataclass
class _Supervisor:
    processes: int
    address: str
    serve: Serve
    announce: Callable[[str], None]
    reserved: list[socket.socket]  # the supervisor's hold on the port; children close theirs
    on_exit: Callable[[int], None]
    close_in_child: tuple[int, ...]
    quick_seconds: float
    give_up_deaths: int
    give_up_window: float
    first_backoff: float
    max_backoff: float
    children: dict[int, _Child] = field(default_factory=dict)
    restarts: list[tuple[float, int]] = field(default_factory=list)  # (when, slot)
    quick_deaths: list[float] = field(default_factory=list)
    stop_requested: bool = False
    hup_requested: bool = False
    announced: bool = False
    failed: bool = False
    selector: selectors.BaseSelector = field(default_factory=selectors.DefaultSelector)
    wake_read: int = -1
    wake_write: int = -1

    def run(self) -> int:
        self.wake_read, self.wake_write = os.pipe()
        os.set_blocking(self.wake_read, False)
        os.set_blocking(self.wake_write, False)
        self.selector.register(self.wake_read, selectors.EVENT_READ)
        previous = {signum: signal.getsignal(signum) for signum in _HANDLED}
        for signum in _HANDLED:
            signal.signal(signum, self._on_signal)
        # A signal that lands between checking the flags and blocking in select still wakes it.
        previous_wakeup = signal.set_wakeup_fd(self.wake_write, warn_on_full_buffer=False)
        try:
            for slot in range(self.processes):
                self._start(slot)
            self._supervise()
            return self._stop_children()
        finally:
            signal.set_wakeup_fd(previous_wakeup)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self.selector.close()
            for child in self.children.values():
                self._close_ready(child)
            os.close(self.wake_read)
            os.close(self.wake_write)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self.hup_requested = True
        elif signum != signal.SIGCHLD:
            self.stop_requested = True

    def _supervise(self) -> None:
        """Until asked to stop (or giving up): read readiness, reap, restart, announce."""
        while not self.stop_requested and not self.failed:
            timeout = None
            if self.restarts:
                timeout = max(0.0, min(when for when, _ in self.restarts) - time.monotonic())
            for key, _ in self.selector.select(timeout):
                if key.fd == self.wake_read:
                    _drain(self.wake_read)
                else:
                    self._read_ready(self.children.get(key.data))
            self._reap()
            if self.stop_requested or self.failed:
                return
            if self.hup_requested:
                self.hup_requested = False
                for pid in self.children:
                    _kill(pid, signal.SIGHUP)
            now = time.monotonic()
            for when, slot in [restart for restart in self.restarts if restart[0] <= now]:
                self.restarts.remove((when, slot))
                self._start(slot)
            if (not self.announced and len(self.children) == self.processes
                    and all(child.ready_at is not None for child in self.children.values())):
                self.announced = True
                self.announce(self.address)

    def _stop_children(self) -> int:
        """SIGTERM to every child, wait for all of them; 0 if each exited cleanly."""
        self.restarts.clear()
        clean = not self.failed
        for pid in self.children:
            _kill(pid, signal.SIGTERM)
        while self.children:
            for key, _ in self.selector.select():
                if key.fd == self.wake_read:
                    _drain(self.wake_read)
                else:
                    self._read_ready(self.children.get(key.data))
            for child, code in self._reaped():
                if code not in (0, -signal.SIGTERM):  # SIGTERM: stopped before it set a handler
                    log.warning("server process %d %s while stopping", child.pid, _status(code))
                    clean = False
        return 0 if clean else 1

    def _start(self, slot: int) -> None:
        read_fd, write_fd = os.pipe()
        sys.stdout.flush()  # or the child would write the supervisor's buffered output again
        sys.stderr.flush()
        # Blocked across the fork: the child resets its handlers before any signal reaches it.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _HANDLED)
        try:
            pid = os.fork()
            if pid == 0:
                self._child(read_fd, write_fd, mask)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        self.children[pid] = _Child(slot, pid, time.monotonic(), read_fd)
        self.selector.register(read_fd, selectors.EVENT_READ, pid)

    def _child(self, read_fd: int, write_fd: int, mask: Iterable[int]) -> NoReturn:
        """In the forked child: forget the supervisor's state, run ``serve``, exit with its code."""
        code = 1
        try:
            supervisor = os.getppid()
            signal.set_wakeup_fd(-1)
            for signum in _HANDLED:  # SIGHUP ignored until ``serve`` handles it, never fatal
                signal.signal(signum, signal.SIG_IGN if signum == signal.SIGHUP else signal.SIG_DFL)
            _die_with_parent()
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            if os.getppid() != supervisor:  # it died before PR_SET_PDEATHSIG took effect
                os._exit(1)
            self.selector.close()
            for sock in self.reserved:
                sock.close()
            for fd in [read_fd, self.wake_read, self.wake_write, *self.close_in_child,
                       *(child.ready_fd for child in self.children.values())]:
                if fd is not None:
                    os.close(fd)
            code = self.serve(self.address, _Ready(write_fd))
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        except BaseException:
            traceback.print_exc()
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)

    def _read_ready(self, child: _Child | None) -> None:
        if child is None or child.ready_fd is None:
            return
        try:
            data = os.read(child.ready_fd, 1)
        except BlockingIOError:
            return
        if data:
            child.ready_at = time.monotonic()
        self._close_ready(child)  # ready, or closed without a word: waitpid tells the rest

    def _close_ready(self, child: _Child) -> None:
        if child.ready_fd is not None:
            self.selector.unregister(child.ready_fd)
            os.close(child.ready_fd)
            child.ready_fd = None

    def _reaped(self) -> list[tuple[_Child, int]]:
        """The children that exited since the last call, with their exit codes (-N: signal N)."""
        exited = []
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            child = self.children.pop(pid, None)
            if child is not None:
                self._read_ready(child)  # a child may have written "ready" just before dying
                self._close_ready(child)
                exited.append((child, os.waitstatus_to_exitcode(status)))
                try:
                    self.on_exit(pid)
                except Exception:  # never lose the supervisor to a hook
                    log.exception("on_exit(%d) failed", pid)
        return exited

    def _reap(self) -> None:
        for child, code in self._reaped():
            now = time.monotonic()
            quick = child.ready_at is None or now - child.ready_at < self.quick_seconds
            self.quick_deaths = [t for t in self.quick_deaths if now - t < self.give_up_window]
            if quick:
                self.quick_deaths.append(now)
            if quick and len(self.quick_deaths) >= self.give_up_deaths:
                log.error("server process %d %s; %d server processes died within %.0f s of "
                          "starting in the last %.0f s: giving up", child.pid, _status(code),
                          len(self.quick_deaths), self.quick_seconds, self.give_up_window)
                self.failed = True
                return
            delay = 0.0
            if quick:
                delay = min(self.max_backoff,
                            self.first_backoff * 2 ** (len(self.quick_deaths) - 1))
            log.warning("server process %d %s; starting another in %.1f s",
                        child.pid, _status(code), delay)
            self.restarts.append((now + delay, child.slot))


class _Ready:
    """The child's ``ready()``: one byte down its pipe, once."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    def __call__(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.write(fd, b"r")
            finally:
                os.close(fd)


def _status(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


def _kill(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


def _die_with_parent() -> None:
    """Linux: SIGTERM this process when its parent (the supervisor) dies, however it dies."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
