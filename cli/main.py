"""The ``arbiter`` command: ``serve``, ``simulate`` (and the admin/evaluation commands)."""

from __future__ import annotations

import argparse
import faulthandler
import math
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from arbiter.cli.usage import DESCRIPTION, Parser, version
from arbiter.server.config import ConfigError, ExperimentConfig, load_config

if TYPE_CHECKING:
    from arbiter.cli.checks import Problem
    from arbiter.client import Connection
    from arbiter.server.transport import TlsFiles


def main(argv: Sequence[str] | None = None) -> int:
    # Typed as the base class: the register() functions take its subparsers (Parsers all).
    parser: argparse.ArgumentParser = Parser(prog="arbiter", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=version(),
                        help="print the installed version and exit")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the decision server")
    serve.add_argument("--listen", default="127.0.0.1:50051",
                       help="HOST:PORT or [IPv6]:PORT (port 0: any free port, printed when ready)")
    serve.add_argument("--metrics-listen", metavar="HOST:PORT",
                       help="serve Prometheus metrics over HTTP here (README: Metrics; port 0: any "
                            "free port, printed when ready); under --processes the supervisor "
                            "serves every process's, combined (default: no metrics)")
    serve.add_argument("--db", default="sqlite:///arbiter.db",
                       help="SQLAlchemy URL: sqlite:///FILE or postgresql://USER@HOST:PORT/DB")
    serve.add_argument("--config", metavar="FILE",
                       help="experiments TOML file (default: ./experiments.toml; the demo config is "
                            "examples/experiments.toml)")
    serve.add_argument("--max-actions", type=int, default=1000,
                       help="most actions one Choose may offer")
    _limit_arguments(serve)
    serve.add_argument("--workers", type=int, default=8,
                       help="threads for blocking work beside the event loop (SQL reads, admin)")
    serve.add_argument("--reuse-port", action="store_true", help="set SO_REUSEPORT (off by default)")
    serve.add_argument("--processes", default="1", metavar="N",
                       help="pre-fork N servers on one port (implies SO_REUSEPORT) under a "
                            "supervisor that restarts them; 1 (default): one process, no supervisor")
    serve.add_argument("--durability", choices=("strict", "relaxed"), default="strict",
                       help="strict: answer after the commit; relaxed: answer before it "
                            "(bounded queue, backpressure; a process crash loses the queue)")
    serve.add_argument("--snapshot-every", type=int, default=1000,
                       help="learned events between model snapshots")
    serve.add_argument("--snapshot-seconds", type=float, default=60.0,
                       help="seconds between model snapshots (if anything was learned)")
    serve.add_argument("--no-migrate", dest="migrate", action="store_false",
                       help="refuse a database whose schema is not at this release's revision "
                            "instead of upgrading it (then run `arbiter db upgrade`)")
    security = serve.add_argument_group("security (README: Security and privacy)")
    security.add_argument("--tls-cert", metavar="PEM",
                          help="serve TLS with this certificate chain (with --tls-key)")
    security.add_argument("--tls-key", metavar="PEM", help="the private key of --tls-cert")
    security.add_argument("--tls-client-ca", metavar="PEM",
                          help="require a client certificate signed by this CA (mTLS)")
    security.add_argument("--auth-tokens", metavar="TOML",
                          help="token file: every call needs `authorization: Bearer <token>` "
                               "with a role for its method (reloaded on SIGHUP)")
    security.add_argument("--no-reflection", dest="reflection", action="store_false",
                          help="do not serve gRPC server reflection")
    security.add_argument("--insecure", action="store_true",
                          help="allow plaintext on an address that is not loopback")
    security.add_argument("--secret-file", metavar="FILE",
                          help="the key of unit pseudonyms and hashed features (default: "
                               "arbiter.secret beside an SQLite file, made on first start; "
                               "required for PostgreSQL: the same file on every server)")
    serve.add_argument("--log-level", default="WARNING", help="DEBUG, INFO, WARNING or ERROR")
    serve.add_argument("--log-format", choices=("text", "json"), default="text",
                       help="stderr log lines: text, or one JSON object per line (time, level, "
                            "logger, message, event_id where there is one)")
    serve.set_defaults(run=_serve)

    simulate = commands.add_parser("simulate", help="drive synthetic users at a running server")
    simulate.add_argument("--target", required=True, help="HOST:PORT of the server")
    simulate.add_argument("--experiment", default="homepage", help="experiment to drive")
    simulate.add_argument("--events", type=int, default=5000, help="Choose + Reward pairs to send")
    simulate.add_argument("--seed", type=int, default=0, help="seed of the simulated users")
    _connection_arguments(simulate)
    simulate.set_defaults(run=_simulate)

    from arbiter.cli.evaluate import register as register_evaluation

    register_evaluation(commands)
    from arbiter.cli.db import register as register_db

    register_db(commands)
    from arbiter.cli.policies import register as register_policies

    register_policies(commands)
    experiments = commands.add_parser("experiments", help="list the experiments a server runs, "
                                                         "or show one: variants, roles, policies, traffic")
    experiments.add_argument("name", nargs="?", metavar="NAME", help="show this experiment only")
    experiments.add_argument("--target", required=True, help="HOST:PORT of the server")
    experiments.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _connection_arguments(experiments)
    experiments.set_defaults(run=_experiments)

    traffic = commands.add_parser("traffic", help="set the traffic weights of an experiment's "
                                                 "serving variants")
    traffic.add_argument("--target", required=True, help="HOST:PORT of the server")
    traffic.add_argument("--experiment", required=True)
    traffic.add_argument("weights", nargs="+", metavar="NAME=WEIGHT",
                         help="serving variant and weight (normalised by their sum), e.g. "
                              "champion=0.8 holdout=0.2")
    traffic.add_argument("--json", action="store_true", help="print the experiment as JSON")
    _connection_arguments(traffic)
    traffic.set_defaults(run=_traffic)

    mode = commands.add_parser("mode", help="set how a variant serves: online, apprentice "
                                           "(serve the caller's baseline, learn from it) or "
                                           "logging (the baseline with an exploration floor, "
                                           "learn nothing)")
    mode.add_argument("--target", required=True, help="HOST:PORT of the server")
    mode.add_argument("--experiment", required=True)
    mode.add_argument("--variant", required=True)
    mode.add_argument("mode", choices=("online", "apprentice", "logging"))
    mode.add_argument("--reason", default="", help="why (stored with the change)")
    mode.add_argument("--json", action="store_true", help="print the experiment as JSON")
    _connection_arguments(mode)
    mode.set_defaults(run=_mode)

    report = commands.add_parser("report", help="print an experiment's live report")
    report.add_argument("--target", required=True, help="HOST:PORT of the server")
    report.add_argument("--experiment", required=True)
    report.add_argument("--segment-by", default="",
                        help="categorical context feature NAMESPACE.FEATURE to break down by "
                             "(default: the experiment's `segment_by`)")
    report.add_argument("--min-effect", type=float, default=0.0,
                        help="smallest difference in reward worth a verdict: 'better' needs the "
                             "lower bound of value minus the champion's above it, 'worse' the "
                             "upper bound below -it (default 0: any difference)")
    report.add_argument("--json", action="store_true", help="print the report as JSON")
    _connection_arguments(report)
    report.set_defaults(run=_report)

    promote = commands.add_parser("promote", help="make a variant the experiment's champion")
    promote.add_argument("--target", required=True, help="HOST:PORT of the server")
    promote.add_argument("--experiment", required=True)
    promote.add_argument("--variant", required=True)
    promote.add_argument("--reason", default="", help="why (stored in the audit row)")
    _connection_arguments(promote)
    promote.set_defaults(run=_promote)

    erase = commands.add_parser("erase", help="erase a unit: delete its decisions, rewards and "
                                              "learned events, rebuild the models without them")
    erase.add_argument("--target", required=True, help="HOST:PORT of the server")
    erase.add_argument("--unit", required=True, help="the unit id as sent in Choose")
    erase.add_argument("--experiment", default="", help="only this experiment (default: all)")
    erase.add_argument("--request-id", default="",
                       help="idempotency key: the same id again returns the first answer "
                            "(default: a new one, printed)")
    _connection_arguments(erase)
    erase.set_defaults(run=_erase)

    args = parser.parse_args(argv)
    from sqlalchemy.exc import DBAPIError

    from arbiter.log.migrate import SchemaError
    from arbiter.server.privacy import SecretError

    try:
        return int(args.run(args))
    except DBAPIError as error:  # a database that stopped answering, or a file that is not one
        from arbiter.cli.checks import database_error

        problem = database_error(error, getattr(args, "db", None))
        if problem is None:
            raise
        print(f"arbiter {args.command}: {problem.message}", file=sys.stderr)
        return problem.code
    except (SchemaError, SecretError) as error:  # e.g. `serve --no-migrate` on a database
        print(f"arbiter {args.command}: {error}", file=sys.stderr)  # behind: one line
        return 2


def _connection_arguments(parser: argparse.ArgumentParser) -> None:
    from arbiter.cli.connection import add_arguments

    add_arguments(parser)


def _connection(args: argparse.Namespace) -> Connection:
    from arbiter.cli.connection import from_args

    return from_args(args)


def _security(args: argparse.Namespace) -> str | None:
    """What is wrong with the serve command's security flags (one line), or None."""
    from arbiter.server.auth import TokenFileError, load_tokens
    from arbiter.server.transport import TransportError, is_loopback

    if bool(args.tls_cert) != bool(args.tls_key):
        return "--tls-cert and --tls-key go together"
    if args.tls_client_ca and not args.tls_cert:
        return "--tls-client-ca needs --tls-cert and --tls-key"
    try:
        tls = _tls_files(args)
        if tls is not None:
            tls.read()
        if args.auth_tokens:
            load_tokens(args.auth_tokens)
    except (TransportError, TokenFileError) as error:
        return str(error)
    if not args.tls_cert and not args.insecure and not is_loopback(args.listen):
        return (f"refusing to listen on {args.listen} without TLS: give --tls-cert and "
                "--tls-key, or --insecure to serve plaintext on a network anyway")
    return None


def _tls_files(args: argparse.Namespace) -> TlsFiles | None:
    from arbiter.server.transport import TlsFiles

    if not args.tls_cert:
        return None
    return TlsFiles(cert=args.tls_cert, key=args.tls_key, client_ca=args.tls_client_ca)


def _serve(args: argparse.Namespace) -> int:
    processes = _positive_int(args.processes)
    if processes is None:
        print(f"arbiter: --processes must be a whole number >= 1, got {args.processes!r}",
              file=sys.stderr)
        return 2
    from arbiter.cli.checks import db_url_problem, listen_problem

    for found in (listen_problem(args.listen), db_url_problem(args.db), _metrics_problem(args)):
        if found is not None:
            print(f"arbiter serve: {found.message}", file=sys.stderr)
            return found.code
    problem = _security(args)
    if problem is not None:
        print(f"arbiter: {problem}", file=sys.stderr)
        return 2
    from arbiter.server.logs import configure as configure_logs

    # With several processes, text lines say whose they are (JSON lines always carry "pid").
    configure_logs(args.log_level, args.log_format, show_pid=processes > 1)
    if args.config is None:  # ./experiments.toml, or say where the demo config is
        from arbiter.cli.checks import DEFAULT_CONFIG, default_config_problem

        found = default_config_problem()
        if found is not None:
            print(f"arbiter serve: {found.message}", file=sys.stderr)
            return found.code
        args.config = DEFAULT_CONFIG
    try:
        configs = load_config(args.config)
    except ConfigError as error:
        print(f"arbiter: {error}", file=sys.stderr)
        return 2
    from arbiter.cli.checks import bind_problem, database_problem

    # Before anything starts: a port another process holds, a database that does not answer.
    found = (bind_problem(args.listen, reuse_port=args.reuse_port or processes > 1)
             or (bind_problem(args.metrics_listen, flag="--metrics-listen")
                 if args.metrics_listen is not None else None)
             or database_problem(args.db))
    if found is not None:
        print(f"arbiter serve: {found.message}", file=sys.stderr)
        return found.code
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 PID` dumps every thread's stack
    if processes == 1:
        return _run_server(args, configs, args.listen, args.reuse_port, _announce)
    from arbiter.server.privacy import load_secret

    load_secret(args.secret_file, args.db)  # before forking: one line (SecretError), one file
    if args.metrics_listen is not None:
        return _supervise_with_metrics(args, configs, processes)
    return _supervise(args, configs, processes)


def _supervise(args: argparse.Namespace, configs: dict[str, ExperimentConfig], processes: int, *,
               announce: Callable[[str], None] | None = None,
               on_exit: Callable[[int], None] = lambda _pid: None,
               close_in_child: Sequence[int] = ()) -> int:
    """``--processes N``: the supervisor forks before any gRPC object exists; each child builds
    its own server."""
    from arbiter.server.processes import supervise

    return supervise(processes, args.listen,
                     lambda listen, ready: _run_server(args, configs, listen, True,
                                                       lambda _address: ready(),
                                                       metrics_shared=args.metrics_listen is not None),
                     announce=announce or _announce, on_exit=on_exit, close_in_child=close_in_child)


def _supervise_with_metrics(args: argparse.Namespace, configs: dict[str, ExperimentConfig],
                            processes: int) -> int:
    """``--processes N --metrics-listen``: prometheus-client's multi-process mode. A fresh folder
    in PROMETHEUS_MULTIPROC_DIR before prometheus_client is first imported (it reads it then),
    each child writes its values there, the supervisor serves their combination and drops a
    dead child's gauges; the folder is removed at exit."""
    import os
    import shutil
    import tempfile

    directory = tempfile.mkdtemp(prefix="arbiter-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    from arbiter.server.metrics import Endpoint, aggregated, process_dead

    try:
        endpoint = Endpoint(args.metrics_listen, aggregated(directory))

        def announce(address: str) -> None:
            _announce(address)
            _announce_metrics(endpoint.address)

        try:
            return _supervise(args, configs, processes, announce=announce,
                              on_exit=lambda pid: process_dead(directory, pid),
                              close_in_child=[endpoint.fileno()])
        finally:
            endpoint.stop()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _metrics_problem(args: argparse.Namespace) -> Problem | None:
    """What is wrong with ``--metrics-listen`` (one line), or None."""
    from arbiter.cli.checks import Problem, listen_problem, split_listen

    if args.metrics_listen is None:
        return None
    found = listen_problem(args.metrics_listen, "--metrics-listen")
    if found is not None or listen_problem(args.listen) is not None:
        return found
    port = split_listen(args.metrics_listen)[1]
    if port != 0 and port == split_listen(args.listen)[1]:
        return Problem(f"--metrics-listen {args.metrics_listen!r} uses the port of --listen "
                       f"{args.listen!r}: give the metrics another port, e.g. 9464")
    return None


def _limit_arguments(serve: argparse.ArgumentParser) -> None:
    """The limits on what one call may hold or the server may queue (README: Limits)."""
    from arbiter.server.convert import DEFAULT_LIMITS as limits
    from arbiter.server.convert import DEFAULT_MAX_BATCH

    group = serve.add_argument_group("limits (README: Limits); a call over one is refused")
    group.add_argument("--max-name-length", type=int, default=limits.max_name_length,
                       help="characters of a namespace name or a feature name")
    group.add_argument("--max-value-length", type=int, default=limits.max_value_length,
                       help="characters of a category value")
    group.add_argument("--max-features-per-namespace", type=int,
                       default=limits.max_features_per_namespace,
                       help="numbers and categories of one namespace")
    group.add_argument("--max-namespaces", type=int, default=limits.max_namespaces,
                       help="namespaces of one Choose: the context's and every action's")
    group.add_argument("--max-features", type=int, default=limits.max_features,
                       help="features of one Choose: the context's and every action's")
    group.add_argument("--max-batch", type=int, default=DEFAULT_MAX_BATCH,
                       help="requests of one ChooseBatch; more: the call is INVALID_ARGUMENT")
    group.add_argument("--max-concurrent-rpcs", type=int, default=1000,
                       help="calls in flight beyond this are answered RESOURCE_EXHAUSTED at once "
                            "(0: no cap)")
    group.add_argument("--max-queued-writes", type=int, default=10_000,
                       help="writes waiting for the group commit; a call finding the queue full "
                            "is answered RESOURCE_EXHAUSTED at once")


def _limits(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`Settings` fields of :func:`_limit_arguments`."""
    from arbiter.server.convert import Limits

    return {"limits": Limits(max_name_length=args.max_name_length,
                             max_value_length=args.max_value_length,
                             max_features_per_namespace=args.max_features_per_namespace,
                             max_namespaces=args.max_namespaces, max_features=args.max_features),
            "max_batch": args.max_batch,
            "max_concurrent_rpcs": args.max_concurrent_rpcs,
            "max_queued_writes": args.max_queued_writes}


def _positive_int(text: str) -> int | None:
    try:
        value = int(text)
    except ValueError:
        return None
    return value if value >= 1 else None


def _started(start: Callable[[], str], stop: Callable[[], None], listen: str,
             reuse_port: bool) -> str:
    """``start()``; a port taken since the check in ``_serve`` is one line and exit 1."""
    try:
        return start()
    except RuntimeError:  # gRPC's "Failed to bind to address"
        from arbiter.cli.checks import bind_problem

        problem = bind_problem(listen, reuse_port=reuse_port)
        if problem is None:
            raise
        stop()
        print(f"arbiter serve: {problem.message}", file=sys.stderr)
        raise SystemExit(problem.code) from None


def _announce(address: str) -> None:
    print(f"arbiter listening on {address}", flush=True)


def _announce_metrics(address: str) -> None:
    """The second ready line, with --metrics-listen (after the first: scripts wait for that)."""
    print(f"arbiter metrics on http://{address}/metrics", flush=True)


def _run_server(args: argparse.Namespace, configs: dict[str, ExperimentConfig], listen: str,
                reuse_port: bool, ready: Callable[[str], None], *,
                metrics_shared: bool = False) -> int:
    """One server until SIGTERM/SIGINT: ``ready(HOST:PORT)`` once it restored and serves.
    ``metrics_shared``: a child of ``--processes`` whose supervisor serves the metrics."""
    from arbiter.server.app import App, Settings

    stop = threading.Event()
    reload = threading.Event()  # SIGHUP: read the token file again
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, lambda *_: reload.set())
    app = App(Settings(listen=listen, db=args.db, max_actions=args.max_actions, **_limits(args),
                       metrics_listen=None if metrics_shared else args.metrics_listen,
                       metrics_shared=metrics_shared,
                       workers=args.workers, reuse_port=reuse_port,
                       durability=args.durability, snapshot_every=args.snapshot_every,
                       snapshot_seconds=args.snapshot_seconds, migrate=args.migrate,
                       tls=_tls_files(args), auth_tokens=args.auth_tokens,
                       reflection=args.reflection, secret_file=args.secret_file), configs)
    ready(_started(app.start, app.stop, listen, reuse_port))
    if app.metrics_address is not None:  # one process serves its own (else the supervisor)
        _announce_metrics(app.metrics_address)
    # Timed waits: the main thread returns to Python every half second, so the handler's
    # set() is always seen (an untimed wait was seen to miss a SIGTERM under load).
    while not stop.wait(0.5):
        if reload.is_set():  # reloaded here, on the main thread, not inside the handler
            reload.clear()
            app.reload_tokens()
    app.stop()
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from arbiter.cli.simulate import run

    return run(args.target, args.experiment, args.events, seed=args.seed,
               connection=_connection(args))


def _report(args: argparse.Namespace) -> int:
    from arbiter.cli.admin import report

    if not math.isfinite(args.min_effect) or args.min_effect < 0:
        print(f"arbiter report: --min-effect must be a finite number >= 0, got {args.min_effect}",
              file=sys.stderr)
        return 2
    if args.json:
        from arbiter.cli.experiments import show_report_json

        return show_report_json(args.target, args.experiment, args.segment_by,
                                min_effect=args.min_effect, connection=_connection(args))
    return report(args.target, args.experiment, args.segment_by, min_effect=args.min_effect,
                  connection=_connection(args))


def _promote(args: argparse.Namespace) -> int:
    from arbiter.cli.admin import promote

    return promote(args.target, args.experiment, args.variant, args.reason,
                   connection=_connection(args))


def _erase(args: argparse.Namespace) -> int:
    from arbiter.cli.admin import erase

    return erase(args.target, args.unit, args.experiment, args.request_id,
                 connection=_connection(args))


def _experiments(args: argparse.Namespace) -> int:
    from arbiter.cli.experiments import show_experiments

    return show_experiments(args.target, args.name, as_json=args.json, connection=_connection(args))


def _mode(args: argparse.Namespace) -> int:
    from arbiter.cli.experiments import set_mode

    return set_mode(args.target, args.experiment, args.variant, args.mode, args.reason,
                    as_json=args.json, connection=_connection(args))


def _traffic(args: argparse.Namespace) -> int:
    from arbiter.cli.experiments import set_traffic

    return set_traffic(args.target, args.experiment, args.weights, as_json=args.json,
                       connection=_connection(args))
