"""``arbiter db upgrade``: bring the decision log's schema to this release's revision.

``arbiter serve`` does the same at start unless ``--no-migrate``; this command is for operators
who upgrade the schema as a separate step (then serve with ``--no-migrate``). Exit codes: 0
done (also when already at head), 1 the database could not be upgraded, 2 ``--db`` is not a
database URL Arbiter can use (one line on stderr).
"""

from __future__ import annotations

import argparse
import sys

import sqlalchemy as sa

__all__ = ["register"]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``db`` command (``db upgrade``) to ``arbiter``'s subparsers."""
    db = commands.add_parser("db", help="manage the decision log's database schema")
    actions = db.add_subparsers(dest="db_command", required=True)
    upgrade = actions.add_parser("upgrade", help="upgrade the schema to this release's revision "
                                                 "(creates it in an empty database)")
    upgrade.add_argument("--db", required=True,
                         help="SQLAlchemy URL: sqlite:///FILE or postgresql://USER@HOST:PORT/DB")
    upgrade.set_defaults(run=_upgrade)


def _upgrade(args: argparse.Namespace) -> int:
    from arbiter.cli.checks import db_url_problem
    from arbiter.log.engine import create_engine
    from arbiter.log.migrate import BASELINE, SchemaError, upgrade

    problem = db_url_problem(args.db)
    if problem is not None:
        print(f"arbiter db upgrade: {problem.message}", file=sys.stderr)
        return problem.code
    engine = create_engine(args.db)
    try:
        done = upgrade(engine)
    except (SchemaError, sa.exc.OperationalError) as error:
        message = str(error.orig if isinstance(error, sa.exc.DBAPIError) else error)
        print(f"arbiter db upgrade: {message.strip().splitlines()[0]}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    if done.adopted:
        before = f"none (tables written before schema migrations: stamped {BASELINE})"
    else:
        before = done.before or "none (no Arbiter tables)"
    print(f"revision before: {before}")
    print(f"revision after:  {done.after} (head)")
    return 0
