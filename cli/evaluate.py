"""``arbiter evaluate`` and ``arbiter export``: offline evaluation and export of the decision log.

``evaluate`` streams the learned decisions of one experiment in time order, replays every
``--candidate`` (and with ``--candidates-from-config`` every configured variant) progressively,
plus a uniform baseline, and prints the answer first (the expected change per 1,000 decisions
and in percent), the verdict (:mod:`evaluation.verdict`: ``--min-effect``, ``--min-ess``,
``--max-unsupported``), every estimator's value and interval and the paired differences;
``--json``, ``--report`` and ``--promote-if-better`` write or act on the same aggregates (the
server is reached through :mod:`cli.served`). ``export`` writes the log as
DSJson or Parquet, to a file or (``--out -``) to stdout. Both only read: they never create or
change a table. Exit codes: 0 done, 1 nothing to evaluate or export (an experiment without
decisions in the log or the window: nothing is written), no decision log this release can read
at ``--db``, or export failed, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import grpc
import sqlalchemy as sa
from rich.console import Console
from rich.progress import Progress

from arbiter.cli.checks import db_url_problem
from arbiter.cli.connection import add_arguments as add_connection_arguments
from arbiter.cli.connection import from_args as connection_from
from arbiter.cli.served import Served, describe_error, from_config, from_server, promote
from arbiter.evaluation._checks import EvaluationInputError
from arbiter.evaluation.estimators import ESTIMATORS
from arbiter.evaluation.export import write_dsjson, write_parquet
from arbiter.evaluation.logdata import (
    LoggedRow,
    LogQuery,
    count_log,
    logged_experiments,
    parse_time,
    read_log,
    read_rounds,
)
from arbiter.evaluation.promote import decide_promotion
from arbiter.evaluation.replay import CandidateError, CandidateSpec, parse_candidate, replay
from arbiter.evaluation.report_html import render_html
from arbiter.evaluation.summary import format_table, summarize, to_json, to_report
from arbiter.evaluation.verdict import (
    DEFAULT_MAX_UNSUPPORTED,
    DEFAULT_MIN_EFFECT,
    DEFAULT_MIN_ESS,
    NEAR_ZERO,
    MinEffect,
)
from arbiter.log.engine import create_engine
from arbiter.log.migrate import SchemaError, require_readable
from arbiter.server.config import ConfigError

__all__ = ["register"]

BASELINE = CandidateSpec(name="uniform baseline", policy="uniform")


class UsageError(ValueError):
    """A bad command-line value; reported on stderr with exit code 2."""


class NoLog(Exception):
    """No decision log this release can read at ``--db``; reported on stderr with exit code 1."""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``evaluate`` and ``export`` subcommands to ``arbiter``'s subparsers."""
    evaluate = commands.add_parser("evaluate", help="estimate candidate policies offline from the log")
    _log_arguments(evaluate)
    evaluate.add_argument("--candidate", action="append", default=[], metavar="NAME=POLICY[:JSON]",
                          help='a policy to replay, e.g. \'lin=linucb:{"alpha": 0.5}\' (repeatable)')
    evaluate.add_argument("--candidates-from-config", action="store_true",
                          help="also replay every variant of the experiment as configured (policy and "
                               "params), named as the variant: from --config, else the server at --target")
    evaluate.add_argument("--config", metavar="FILE",
                          help="experiments TOML file for --candidates-from-config (default: ask --target)")
    evaluate.add_argument("--json", metavar="FILE", help="write the results as JSON")
    evaluate.add_argument("--report", metavar="FILE.html", help="write a self-contained HTML report")
    evaluate.add_argument("--segment-by", metavar="NS.FEATURE",
                          help="also estimate per value of this context feature")
    evaluate.add_argument("--confidence", type=float, default=0.95, help="interval level (default 0.95)")
    evaluate.add_argument("--interval", choices=("normal", "bootstrap"), default="normal",
                          help="normal (Wald, O(n); default) or percentile bootstrap")
    evaluate.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                          help="bootstrap replicates (with --interval bootstrap)")
    evaluate.add_argument("--estimator", choices=tuple(ESTIMATORS), default="dr",
                          help="estimator for the verdict, the winner and segments (default dr)")
    evaluate.add_argument("--switch-tau", type=float, default=math.inf,
                          help="importance-weight threshold of switch-dr (default inf)")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the candidates' RNGs")
    evaluate.add_argument("--min-effect", default=DEFAULT_MIN_EFFECT, metavar="DELTA",
                          help="smallest difference worth calling better: reward units (0.01) or percent "
                               f"of the reference's mean (2%%); default {DEFAULT_MIN_EFFECT}")
    evaluate.add_argument("--min-ess", type=float, default=DEFAULT_MIN_ESS, metavar="N",
                          help=f"no verdict below this effective sample size (default {DEFAULT_MIN_ESS:g})")
    evaluate.add_argument("--max-unsupported", type=float, default=DEFAULT_MAX_UNSUPPORTED, metavar="SHARE",
                          help="no verdict when more of a candidate's mass is on actions the log gave "
                               f"probability < {NEAR_ZERO:g} (default {DEFAULT_MAX_UNSUPPORTED:g})")
    evaluate.add_argument("--promote-if-better", action="store_true",
                          help="promote the winner on the server if it is a variant configured as "
                               "evaluated and better than the champion by the verdict's rule")
    evaluate.add_argument("--target", metavar="HOST:PORT", help="server for --promote-if-better")
    add_connection_arguments(evaluate)
    evaluate.set_defaults(run=_evaluate)

    export = commands.add_parser("export", help="export the decision log as DSJson or Parquet")
    _log_arguments(export)
    export.add_argument("--format", choices=("dsjson", "parquet"), required=True)
    export.add_argument("--out", required=True, metavar="FILE",
                        help="file to write (its folder must exist), or - for stdout")
    export.set_defaults(run=_export)


def _log_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", required=True, help="SQLAlchemy URL of the decision log")
    parser.add_argument("--experiment", required=True)
    parser.add_argument("--since", metavar="T", help="ISO 8601 time; decisions at or after it")
    parser.add_argument("--until", metavar="T", help="ISO 8601 time; decisions before it")


def _failing(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Report bad arguments as one line on stderr and exit code 2, an unreadable log with 1."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except (UsageError, CandidateError, EvaluationInputError) as error:
            print(f"arbiter {args.command}: {error}", file=sys.stderr)
            return 2
        except NoLog as error:
            print(f"arbiter {args.command}: {error}", file=sys.stderr)
            return 1

    return run


@_failing
def _evaluate(args: argparse.Namespace) -> int:
    candidates = [parse_candidate(text) for text in args.candidate]
    served = _served(args) if args.candidates_from_config or args.promote_if_better else None
    if args.candidates_from_config and served is not None:
        candidates += list(served.variants.values())
    if not candidates:
        raise UsageError("give at least one --candidate NAME=POLICY, or --candidates-from-config")
    if any(c.name == BASELINE.name for c in candidates):
        raise UsageError(f"the candidate name {BASELINE.name!r} is reserved")
    names = [c.name for c in candidates]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise UsageError(f"candidate names must be distinct; {', '.join(twice)} given twice "
                         "(a --candidate named like a variant of --candidates-from-config?)")
    if args.segment_by is not None and "." not in args.segment_by:
        raise UsageError(f"--segment-by must look like namespace.feature, got {args.segment_by!r}")
    if not 0.0 < args.confidence < 1.0:
        raise UsageError(f"--confidence must be in (0, 1), got {args.confidence}")
    try:
        MinEffect.parse(args.min_effect)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if not 0.0 <= args.max_unsupported <= 1.0:
        raise UsageError(f"--max-unsupported must be in [0, 1], got {args.max_unsupported}")
    if not args.min_ess >= 0.0:
        raise UsageError(f"--min-ess must be >= 0, got {args.min_ess}")
    engine, query = _open(args, learned_only=True)
    specs = [*candidates, BASELINE]
    try:
        total = count_log(engine, query)
        if total < 2:
            print(f"arbiter evaluate: {total} learned decisions of experiment `{args.experiment}` "
                  "in that window; nothing to evaluate", file=sys.stderr)
            return 1
        with _progress(total, "replaying") as advance:
            log = replay(read_rounds(engine, query), specs, seed=args.seed, segment_by=args.segment_by,
                         on_row=advance)
    finally:
        engine.dispose()
    summary = summarize(
        log, experiment=args.experiment,
        candidates=specs, baselines={BASELINE.name},
        confidence=args.confidence, interval=args.interval, n_bootstrap=args.bootstrap,
        seed=args.seed, primary=args.estimator, switch_tau=args.switch_tau, segment_by=args.segment_by,
        min_effect=args.min_effect, min_ess=args.min_ess, max_unsupported=args.max_unsupported,
        control=None if served is None else served.control,
    )
    print(format_table(summary))
    if args.json:
        Path(args.json).write_text(json.dumps(to_json(summary), indent=2) + "\n", encoding="utf-8")
    if args.report:
        generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        Path(args.report).write_text(render_html(to_report(summary, generated_at=generated)),
                                     encoding="utf-8")
    if args.promote_if_better:
        assert served is not None
        # What the server serves now: a promotion since --config was read must not be missed.
        now = _ask_server(args)
        promotion = decide_promotion(summary, control=now.control, variants=now.variants)
        if promotion.promote and promotion.variant is not None:
            try:
                promote(args.target, args.experiment, promotion.variant, promotion.reason,
                        connection_from(args))
            except grpc.RpcError as error:
                raise NoLog(f"cannot promote `{promotion.variant}`: {describe_error(error)}") from None
        promoted = f"promoted `{promotion.variant}`: " if promotion.promote else ""
        print(promoted + promotion.reason)
    return 0


def _served(args: argparse.Namespace) -> Served:
    """The experiment as configured: from ``--config`` if given, else from the server."""
    if args.promote_if_better and not args.target:
        raise UsageError("--promote-if-better needs --target HOST:PORT")
    if args.config is not None:
        try:
            return from_config(args.config, args.experiment)
        except ConfigError as error:
            raise UsageError(f"--config: {error}") from None
        except KeyError:
            raise UsageError(f"--config {args.config} has no experiment `{args.experiment}`") from None
    if not args.target:
        raise UsageError("--candidates-from-config reads the variants from --config FILE or from the "
                         "server at --target HOST:PORT; give one")
    return _ask_server(args)


def _ask_server(args: argparse.Namespace) -> Served:
    try:
        return from_server(args.target, args.experiment, connection_from(args))
    except grpc.RpcError as error:
        raise NoLog(f"cannot read experiment `{args.experiment}` from {args.target}: "
                    f"{describe_error(error)}") from None


@_failing
def _export(args: argparse.Namespace) -> int:
    dsjson = args.format == "dsjson"
    to_stdout = args.out == "-"
    folder = Path(args.out).expanduser().parent
    if not to_stdout and not folder.is_dir():
        raise UsageError(f"--out {args.out}: the folder {folder} does not exist; create it "
                         f"(mkdir -p {folder}) or write elsewhere (--out - for stdout)")
    engine, query = _open(args, learned_only=dsjson)
    try:
        total = count_log(engine, query)
        if total == 0:
            raise NoLog(_nothing_to_export(engine, args, dsjson))
        try:
            with _progress(total, "exporting") as advance:
                rows = _counting(read_log(engine, query), advance)
                if dsjson:
                    count = write_dsjson(rows, sys.stdout if to_stdout else args.out)
                else:
                    count = write_parquet(rows, sys.stdout.buffer if to_stdout else args.out)
        except OSError as error:
            if not to_stdout:
                Path(args.out).unlink(missing_ok=True)  # no half-written file left behind
            raise NoLog(f"cannot write {args.out}: {error.strerror or error}") from None
    finally:
        engine.dispose()
    # With --out - stdout holds the data: the summary goes to stderr.
    print(f"wrote {count:,} decisions of `{args.experiment}` to {'stdout' if to_stdout else args.out} "
          f"({args.format})", file=sys.stderr if to_stdout else sys.stdout)
    return 0


def _nothing_to_export(engine: sa.Engine, args: argparse.Namespace, dsjson: bool) -> str:
    """Why there is nothing to export: an experiment the log does not know (listing those it
    does), or none of its decisions in the window (learned ones, for DSJson)."""
    known = logged_experiments(engine)
    if args.experiment not in known:
        listed = ", ".join(f"`{name}`" for name in known) or "none"
        where = sa.engine.make_url(args.db).render_as_string(hide_password=True)
        return (f"no experiment `{args.experiment}` in the decision log at {where} (experiments "
                f"with decisions: {listed}); nothing written")
    which = "learned decisions" if dsjson else "decisions"
    return (f"no {which} of experiment `{args.experiment}` in that window; nothing written")


def _open(args: argparse.Namespace, *, learned_only: bool) -> tuple[sa.Engine, LogQuery]:
    try:
        since = None if args.since is None else parse_time(args.since)
        until = None if args.until is None else parse_time(args.until)
    except ValueError as error:
        raise UsageError(f"--since/--until must be ISO 8601 times: {error}") from None
    problem = db_url_problem(args.db, creates=False)
    if problem is not None:
        raise UsageError(problem.message)
    url = sa.engine.make_url(args.db)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").is_file():
        raise UsageError(f"no SQLite database at {url.database!r}; give the file `arbiter serve "
                         "--db` writes to")
    query = LogQuery(experiment=args.experiment, since=since, until=until, learned_only=learned_only)
    engine = create_engine(args.db)  # creates no table; nothing here upgrades the schema
    try:
        require_readable(engine)
    except SchemaError as error:
        engine.dispose()
        raise NoLog(str(error)) from None
    except sa.exc.OperationalError as error:
        engine.dispose()
        reason = str(error.orig).strip().splitlines()[0] if error.orig else "unreachable"
        raise NoLog(f"cannot read the database: {reason}") from None
    return engine, query


@contextmanager
def _progress(total: int, description: str) -> Iterator[Callable[[], None]]:
    """A progress bar on stderr when it is a terminal; yields the per-row ``advance()``."""
    every = 1000
    with Progress(console=Console(stderr=True), disable=not sys.stderr.isatty()) as bar:
        task = bar.add_task(description, total=total)
        seen = 0

        def advance() -> None:
            nonlocal seen
            seen += 1
            if seen % every == 0:
                bar.update(task, advance=every)

        yield advance
        bar.update(task, completed=total)


def _counting(rows: Iterator[LoggedRow], advance: Callable[[], None]) -> Iterator[LoggedRow]:
    for row in rows:
        advance()
        yield row
