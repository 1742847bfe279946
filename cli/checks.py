"""Checks the commands run before they start anything, each answering with one line.

Every check returns None when all is well, or a :class:`Problem`: the one line for stderr (what
is wrong and what to do) and the exit code: 2 for a wrong argument or configuration, 1 for
something at run time (a port another process holds, a database that does not answer).
"""

from __future__ import annotations

import errno
import ipaddress
import re
import socket
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

__all__ = ["DEFAULT_CONFIG", "DEMO_CONFIG", "Problem", "bind_problem", "database_error",
           "database_problem", "db_url_problem", "default_config_problem", "listen_problem", "one_line",
           "split_listen"]

USAGE = 2
RUNTIME = 1

DATABASES = "sqlite:///FILE (e.g. sqlite:///arbiter.db) or postgresql://USER@HOST:PORT/DB"
_LISTEN_EXAMPLE = "e.g. 127.0.0.1:{0}, [::1]:{0} or 0.0.0.0:{0}; port 0 picks a free one"
EXAMPLE_PORTS = {"--listen": 50051, "--metrics-listen": 9464}  # gRPC's, Prometheus exporters' habit
_HOSTNAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_SQLITE_DRIVERS = {"sqlite", "sqlite+pysqlite"}
_POSTGRES_DRIVERS = {"postgresql", "postgres", "postgresql+psycopg"}

DEFAULT_CONFIG = "experiments.toml"  # `serve` reads it from the working folder without --config
# The demo configuration in the source tree (`make run` serves it): cli/ is beside examples/.
DEMO_CONFIG = Path(__file__).resolve().parent.parent / "examples" / "experiments.toml"


@dataclass(frozen=True)
class Problem:
    """One line for stderr and the exit code (2: usage or configuration, 1: run time)."""

    message: str
    code: int = USAGE


def one_line(text: object) -> str:
    """``text`` with its lines joined: a database driver's message is often several."""
    return " ".join(part.strip() for part in str(text).strip().splitlines() if part.strip())


def split_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPv6]:PORT`` as ``(host, port)``, the host without brackets.

    Call it on an address :func:`listen_problem` accepted; raises ``ValueError`` otherwise.
    """
    if listen_problem(listen) is not None:
        raise ValueError(f"not HOST:PORT: {listen!r}")
    host, _, port = listen.rpartition(":")
    return host.removeprefix("[").removesuffix("]"), int(port)


def listen_problem(listen: str, flag: str = "--listen") -> Problem | None:
    """Whether ``listen`` (given as ``flag``: ``--listen``, ``--metrics-listen``) is ``HOST:PORT``
    with a valid host and a port in 0..65535.

    The host is an IPv4 address, a host name, or an IPv6 address in brackets (``[::1]:50051``);
    port 0 asks for any free port (``arbiter serve`` prints the one it got).
    """
    where = f"{flag} {listen!r}"
    example_port = EXAMPLE_PORTS.get(flag, 50051)
    examples = _LISTEN_EXAMPLE.format(example_port)
    if listen.startswith("["):
        host, closed, rest = listen[1:].partition("]")
        if not closed:
            return Problem(f"{where}: the IPv6 address has no closing bracket; {examples}")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return Problem(f"{where}: {host!r} in brackets is not an IPv6 address; {examples}")
        if not rest.startswith(":"):
            return Problem(f"{where} has no port: give [{host}]:PORT, e.g. [{host}]:{example_port} "
                           "(port 0 picks a free one)")
        port = rest[1:]
    elif listen.count(":") > 1:
        return Problem(f"{where}: an IPv6 address goes in brackets, as in [::1]:{example_port}; "
                       f"{examples}")
    else:
        host, colon, port = listen.rpartition(":")
        if not colon:
            return Problem(f"{where} has no port: give HOST:PORT, e.g. "
                           f"{listen or '127.0.0.1'}:{example_port} (port 0 picks a free one)")
    if not (port.isascii() and port.isdigit()):
        return Problem(f"{where}: the port must be a number from 1 to 65535 (or 0 for any free "
                       f"port), got {port!r}")
    if int(port) > 65535:
        return Problem(f"{where}: port {int(port)} is out of range; ports go from 1 to 65535 "
                       "(or 0 for any free port)")
    if not host:
        return Problem(f"{where} has no host: give HOST:PORT, e.g. 127.0.0.1:{port} "
                       "(0.0.0.0 listens on every interface)")
    if not listen.startswith("[") and not _valid_host(host):
        return Problem(f"{where}: {host!r} is neither an IP address nor a host name; "
                       f"{examples}")
    return None


def _valid_host(host: str) -> bool:
    try:
        ipaddress.IPv4Address(host)
        return True
    except ValueError:
        pass
    if host.replace(".", "").isdigit():  # 300.1.2.3 is a broken address, not a host name
        return False
    labels = host.removesuffix(".").split(".")
    return len(host) <= 253 and all(_HOSTNAME.fullmatch(label) for label in labels)


def bind_problem(listen: str, *, reuse_port: bool = False, flag: str = "--listen") -> Problem | None:
    """Whether this process could bind ``listen`` now, tried with a plain socket (the options
    gRPC sets: ``SO_REUSEADDR``, and ``SO_REUSEPORT`` when asked). Port 0 always can."""
    host, port = split_listen(listen)
    if port == 0:
        return None
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        return Problem(f"cannot listen on {listen}: the host {host!r} does not resolve "
                       f"({error.strerror}); give an address of this machine, e.g. 127.0.0.1")
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port and hasattr(socket, "SO_REUSEPORT"):
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            try:
                probe.bind(address)
            except OSError as error:
                return _bind_error(listen, host, port, error, flag)
    return None


def _bind_error(listen: str, host: str, port: int, error: OSError, flag: str) -> Problem:
    if error.errno == errno.EADDRINUSE:
        return Problem(f"cannot listen on {listen}: port {port} is already in use (another "
                       f"server?); stop that process or give another port with {flag}", RUNTIME)
    if error.errno == errno.EADDRNOTAVAIL:
        return Problem(f"cannot listen on {listen}: {host} is not an address of this machine; "
                       "give one of its addresses, 127.0.0.1, or 0.0.0.0 for all of them")
    if error.errno == errno.EACCES:
        return Problem(f"cannot listen on {listen}: ports below 1024 need privileges; "
                       "give a port from 1024 up (the default is 50051)")
    return Problem(f"cannot listen on {listen}: {error.strerror or error}", RUNTIME)


def db_url_problem(url: str, *, flag: str = "--db", creates: bool = True) -> Problem | None:
    """Whether ``url`` is a database URL Arbiter can use: SQLite, or PostgreSQL with psycopg 3.

    ``creates``: the command makes an SQLite file that is not there yet (``serve``, ``db
    upgrade``), so its folder must exist.
    """
    where = f"{flag} {url!r}"
    if "://" not in url:
        guess = f" (for the file {url}: sqlite:///{url})" if url.strip() else ""
        return Problem(f"{where} is not a database URL; give {DATABASES}{guess}")
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        return Problem(f"{where} is not a valid database URL; give {DATABASES}")
    driver = parsed.drivername
    if driver not in _SQLITE_DRIVERS | _POSTGRES_DRIVERS:
        backend = parsed.get_backend_name()
        if backend in ("sqlite", "postgresql"):
            plain = "sqlite" if backend == "sqlite" else "postgresql"
            return Problem(f"{where}: the driver {parsed.get_driver_name()!r} is not installed "
                           f"with Arbiter; write {plain}://... (PostgreSQL uses psycopg 3)")
        guess = ""
        if backend.startswith("sql") or backend == "sqlit":
            guess = f" (did you mean sqlite:{url.split(':', 1)[1]}?)"
        elif backend.startswith("postg"):
            guess = f" (did you mean postgresql:{url.split(':', 1)[1]}?)"
        return Problem(f"{where}: Arbiter keeps its log in SQLite or PostgreSQL, not {backend!r}; "
                       f"give {DATABASES}{guess}")
    if driver in _SQLITE_DRIVERS:
        database = parsed.database or ""
        if database in ("", ":memory:") or database.startswith("file::memory:"):
            return Problem(f"{where} is an in-memory database, which every connection sees empty; "
                           "give a file, e.g. sqlite:///arbiter.db")
        folder = Path(database).expanduser().parent
        if creates and not folder.is_dir():
            return Problem(f"{where}: the folder {folder} does not exist; create it "
                           f"(mkdir -p {folder}) or give a path in an existing folder")
    return None


def database_problem(url: str) -> Problem | None:
    """Whether the database server at ``url`` answers a connection (a run-time problem: exit
    1). Checked before ``serve`` starts anything, and before ``--processes`` forks, so one
    that refuses is one line, not a server after server dying. An SQLite file is not tried
    here (:func:`db_url_problem` checked its folder; the server opens it, and a file that is
    not a database is :func:`database_error`'s one line)."""
    from arbiter.log.engine import create_engine

    if sa.engine.make_url(url).get_backend_name() == "sqlite":
        return None
    engine = create_engine(url)
    try:
        with engine.connect():
            pass
    except sa.exc.DBAPIError as error:
        shown = sa.engine.make_url(url).render_as_string(hide_password=True)
        reason = one_line(error.orig if error.orig is not None else error)
        return Problem(f"cannot connect to the database {shown}: {reason}; check the URL and that "
                       "the database server is running and reachable", RUNTIME)
    finally:
        engine.dispose()
    return None


def database_error(error: sa.exc.DBAPIError, url: str | None) -> Problem | None:
    """The one line for a database that failed under a command (it stopped answering, or the
    file is not a database), or None for an error that is a bug (constraint, SQL) and should
    show its traceback."""
    if type(error) not in (sa.exc.OperationalError, sa.exc.DatabaseError):
        return None
    reason = one_line(error.orig if error.orig is not None else error)
    where = ""
    if url and "://" in url:
        where = f" {sa.engine.make_url(url).render_as_string(hide_password=True)}"
    return Problem(f"the database{where} failed: {reason}; check --db and that the database is "
                   "running and reachable", RUNTIME)


def default_config_problem() -> Problem | None:
    """``serve`` without ``--config``: None if there is a ``./experiments.toml``, else where the
    demo config is."""
    if Path(DEFAULT_CONFIG).is_file():
        return None
    if DEMO_CONFIG.is_file():
        try:
            demo = str(DEMO_CONFIG.relative_to(Path.cwd()))
        except ValueError:
            demo = str(DEMO_CONFIG)
        where = f"the demo config is {demo}: arbiter serve --config {demo}"
    else:
        where = ("the demo config is examples/experiments.toml in Arbiter's source repository; "
                 "the README shows the format")
    return Problem(f"no --config given and no {DEFAULT_CONFIG} in this folder; write one or give "
                   f"--config FILE ({where})")
