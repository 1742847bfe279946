"""Schema migrations: old databases are adopted and upgraded, never recreated; readers never write.

"An old database" is what every release before migrations wrote: the tables of
tests/log/schema_0001.py made by ``create_all``, no ``alembic_version``. Each test runs on a
SQLite file and on a real PostgreSQL (the ``db_url`` fixture) unless it says otherwise.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from arbiter.cli.main import main
from arbiter.client import DecisionClient
from arbiter.log import migrate
from arbiter.log.engine import create_engine
from arbiter.log.schema import metadata as current_metadata
from tests.log import schema_0001 as old
from tests.postgres import fresh_database
from tests.process import ROOT, ServerProcess

CONFIG = ROOT / "examples" / "experiments.toml"
T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
CONTEXT = [{"name": "user", "numbers": {"age": 3.0}, "categories": {"country": "fr"}}]
ACTIONS = [{"id": "a", "features": []}, {"id": "b", "features": []}]


# ---------------------------------------------------------------------------------- helpers
def _decision(event_id: str, at: datetime, **extra: Any) -> dict[str, Any]:
    return {"event_id": event_id, "experiment": "homepage", "variant": "default",
            "model_version": "default@legacy", "unit_hash": None, "context": CONTEXT,
            "actions": ACTIONS, "distribution": [0.25, 0.75], "chosen_index": 1,
            "chosen_action": "b", "probability": 0.75, "shadow": {}, "deferred": False,
            "created_at": at, **extra}


def write_old_database(url: str) -> None:
    """An older release's database: its tables (no alembic_version) and rows of every kind."""
    engine = create_engine(url)
    try:
        old.metadata.create_all(engine)
        with engine.begin() as connection:
            connection.execute(sa.insert(old.decisions), [
                _decision("old-1", T0), _decision("old-2", T0 + timedelta(seconds=1)),
                _decision("old-3", T0 + timedelta(seconds=2), deferred=True,
                          shadow={"challenger": [0.5, 0.5]}),
            ])
            connection.execute(sa.insert(old.rewards), [
                {"event_id": "old-1", "reward_id": None, "value": 1.0, "learned": True,
                 "received_at": T0 + timedelta(seconds=3)},
                {"event_id": "old-2", "reward_id": "r-2", "value": 0.0, "learned": True,
                 "received_at": T0 + timedelta(seconds=4)},
                {"event_id": "old-2", "reward_id": "r-late", "value": 1.0, "learned": False,
                 "received_at": T0 + timedelta(hours=2)},
            ])
            connection.execute(sa.insert(old.activations), [
                {"event_id": "old-3", "activated_at": T0 + timedelta(seconds=5)}])
            connection.execute(sa.insert(old.learnings), [
                {"seq": 1, "event_id": "old-1", "experiment": "homepage", "value": 1.0,
                 "learned_at": T0 + timedelta(seconds=3)},
                {"seq": 2, "event_id": "old-2", "experiment": "homepage", "value": 0.0,
                 "learned_at": T0 + timedelta(seconds=4)},
            ])
            # A snapshot of a variant the configuration has since dropped: kept, never loaded.
            connection.execute(sa.insert(old.snapshots), [
                {"experiment": "homepage", "variant": "retired", "policy": "epsilon_greedy",
                 "position": 2, "state": b"\x00legacy model\xff", "created_at": T0}])
            connection.execute(sa.insert(old.experiment_states), [
                {"experiment": "homepage", "version": 1, "control": "default",
                 "variants": [{"name": "default", "traffic": 1.0, "shadow": False}],
                 "bucket_table": [["default", 10_000]], "reason": "seeded from the configuration",
                 "created_at": T0}])
            connection.execute(sa.insert(old.promotions), [
                {"experiment": "homepage", "from_variant": "retired", "to_variant": "default",
                 "reason": "legacy", "evidence": {"lower": 0.1}, "automatic": False,
                 "state_version": 1, "created_at": T0}])
    finally:
        engine.dispose()


def old_rows(url: str) -> dict[str, dict[tuple[Any, ...], tuple[Any, ...]]]:
    """Every row of the 0001 tables (their 0001 columns), by primary key."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return {table.name: {tuple(row[c.name] for c in table.primary_key): tuple(row)
                                 for row in connection.execute(sa.select(table)).mappings()}
                    for table in old.metadata.sorted_tables}
    finally:
        engine.dispose()


def tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def revision(url: str) -> str | None:
    engine = create_engine(url)
    try:
        return migrate.current_revision(engine)
    finally:
        engine.dispose()


def arbiter(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "arbiter.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def logged_events(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return set(connection.execute(sa.select(old.decisions.c.event_id)).scalars())
    finally:
        engine.dispose()


def choose_and_reward(target: str) -> str:
    with DecisionClient(target) as client:
        choice = client.choose("homepage", context={"user": {"age": 4.0, "country": "de"}},
                               actions=["a", "b"])
        client.reward(choice.event_id, 1.0)
    return choice.event_id


def assert_kept(before: dict[str, dict[tuple[Any, ...], tuple[Any, ...]]], url: str) -> None:
    after = old_rows(url)
    for table, rows in before.items():
        assert rows, f"the old database has no {table} rows to keep"
        for key, row in rows.items():
            assert after[table].get(key) == row, f"{table} row {key} changed or is gone"


# ---------------------------------------------------------------------------------- serve
def test_serve_adopts_an_old_database_serves_and_keeps_every_old_row(db_url: str) -> None:
    write_old_database(db_url)
    before = old_rows(db_url)

    server = ServerProcess(CONFIG, db_url)
    try:
        event_id = choose_and_reward(server.target)
    finally:
        code, _, err = server.stop()

    assert code == 0, err
    assert revision(db_url) == migrate.head()
    assert_kept(before, db_url)
    assert event_id in logged_events(db_url)  # the new decision went into the same table


def test_serve_no_migrate_refuses_an_old_database_with_exit_2_and_one_line(db_url: str) -> None:
    write_old_database(db_url)
    before = old_rows(db_url)

    result = arbiter("serve", "--listen", "127.0.0.1:0", "--db", db_url, "--config", str(CONFIG),
                     "--no-migrate")

    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"`arbiter db upgrade --db {db_url}`" in lines[0]
    assert "alembic_version" not in tables(db_url)  # nothing was changed
    assert old_rows(db_url) == before


def test_serve_no_migrate_starts_after_db_upgrade(db_url: str) -> None:
    write_old_database(db_url)
    before = old_rows(db_url)

    upgraded = arbiter("db", "upgrade", "--db", db_url)
    again = arbiter("db", "upgrade", "--db", db_url)
    server = ServerProcess(CONFIG, db_url, "--no-migrate")
    try:
        choose_and_reward(server.target)
    finally:
        code, _, err = server.stop()

    assert upgraded.returncode == 0, upgraded.stderr
    head = migrate.head()
    assert upgraded.stdout.splitlines() == [
        f"revision before: none (tables written before schema migrations: stamped {migrate.BASELINE})",
        f"revision after:  {head} (head)"]
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [f"revision before: {head}", f"revision after:  {head} (head)"]
    assert code == 0, err
    assert_kept(before, db_url)


def test_serve_no_migrate_refuses_an_empty_database_and_creates_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"

    result = arbiter("serve", "--listen", "127.0.0.1:0", "--db", url, "--config", str(CONFIG),
                     "--no-migrate")

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"arbiter serve: the database {url} has no Arbiter tables, this arbiter needs revision "
        f"{migrate.head()}; run `arbiter db upgrade --db {url}`"]
    assert tables(url) == set()


# ---------------------------------------------------------------------------------- readers
@pytest.mark.parametrize("command", ["evaluate", "export"])
def test_readers_on_an_empty_database_exit_1_and_create_no_table(
        db_url: str, command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if db_url.startswith("sqlite"):
        Path(db_url.removeprefix("sqlite:///")).touch()  # an empty SQLite file
    extra = (["--candidate", "u=uniform"] if command == "evaluate"
             else ["--format", "dsjson", "--out", str(tmp_path / "out.json")])

    code = main([command, "--db", db_url, "--experiment", "homepage", *extra])

    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"arbiter {command}: no Arbiter decision log in ")
    assert tables(db_url) == set()
    assert not (tmp_path / "out.json").exists()


def test_readers_refuse_a_revision_they_do_not_know(
        db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    engine = create_engine(db_url)
    migrate.upgrade(engine)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()

    code = main(["evaluate", "--db", db_url, "--experiment", "homepage", "--candidate", "u=uniform"])

    assert code == 1
    assert "is at schema revision 9999, which this arbiter does not know" in capsys.readouterr().err
    assert revision(db_url) == "9999"


# ---------------------------------------------------------------------------------- upgrade
def test_concurrent_upgrades_of_a_fresh_database_all_succeed_and_leave_it_at_head(db_url: str) -> None:
    engines = [create_engine(db_url) for _ in range(4)]  # one per "process"
    start = threading.Barrier(len(engines))
    results: list[migrate.Upgraded] = []
    errors: list[BaseException] = []

    def run(engine: sa.Engine) -> None:
        start.wait()
        try:
            results.append(migrate.upgrade(engine))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for engine in engines:
        engine.dispose()

    assert errors == []
    assert [r.after for r in results] == [migrate.head()] * len(engines)
    assert sum(r.before is None for r in results) >= 1
    assert revision(db_url) == migrate.head()
    engine = create_engine(db_url)
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM alembic_version")).scalar() == 1
    engine.dispose()


def test_upgrade_at_head_changes_nothing(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        first = migrate.upgrade(engine)
        second = migrate.upgrade(engine)
        assert migrate.is_current(engine)
    finally:
        engine.dispose()

    assert first == migrate.Upgraded(before=None, after=migrate.head(), adopted=False)
    assert second == migrate.Upgraded(before=migrate.head(), after=migrate.head(), adopted=False)


def test_an_old_database_missing_some_tables_is_refused_not_stamped(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        old.metadata.create_all(engine, tables=[old.decisions, old.rewards])
        with pytest.raises(migrate.SchemaError, match="but not activations, experiment_states"):
            migrate.upgrade(engine)
    finally:
        engine.dispose()

    assert tables(db_url) == {"decisions", "rewards"}


# ---------------------------------------------------------------------------------- drift
def schema_of(url: str) -> dict[str, Any]:
    """Everything ``sqlalchemy.inspect`` sees of the database's tables, and their rows (seeds)."""
    engine = create_engine(url)
    try:
        inspector = sa.inspect(engine)
        found: dict[str, Any] = {}
        with engine.connect() as connection:
            for name in sorted(set(inspector.get_table_names()) - {migrate.VERSION_TABLE}):
                pk = inspector.get_pk_constraint(name)
                found[name] = {
                    "columns": {c["name"]: (repr(c["type"]), c["nullable"], c.get("default"))
                                for c in inspector.get_columns(name)},
                    "primary key": (pk.get("name"), pk["constrained_columns"]),
                    "foreign keys": sorted(((fk["name"], fk["constrained_columns"], fk["referred_table"],
                                             fk["referred_columns"])
                                            for fk in inspector.get_foreign_keys(name)), key=repr),
                    "unique": sorted(((u["name"], u["column_names"])
                                      for u in inspector.get_unique_constraints(name)), key=repr),
                    "checks": sorted(((c["name"], c["sqltext"])
                                      for c in inspector.get_check_constraints(name)), key=repr),
                    "indexes": sorted(((i["name"], i["column_names"], bool(i["unique"]))
                                       for i in inspector.get_indexes(name)), key=repr),
                    "rows": sorted(map(repr, connection.execute(sa.text(f"SELECT * FROM {name}")))),
                    "triggers": triggers(connection, name),
                }
        return found
    finally:
        engine.dispose()


def triggers(connection: sa.Connection, table: str) -> list[str]:
    """The names of ``table``'s triggers (``inspect`` does not see them)."""
    if connection.dialect.name == "postgresql":
        query = ("SELECT tgname FROM pg_trigger "
                 "WHERE tgrelid = CAST(:table AS regclass) AND NOT tgisinternal")
    else:
        query = "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :table"
    return sorted(row[0] for row in connection.execute(sa.text(query), {"table": table}))


def differences(migrated: dict[str, Any], created: dict[str, Any]) -> list[str]:
    """What the migrated database has that the ``create_all`` one has not, one line per item."""
    found = []
    for table in sorted(migrated.keys() | created.keys()):
        if table not in created:
            found.append(f"{table}: made by the migrations, not in the metadata")
        elif table not in migrated:
            found.append(f"{table}: in the metadata, made by no revision")
        else:
            for aspect, wanted in created[table].items():
                got = migrated[table][aspect]
                if aspect == "columns":
                    found += [f"{table}.{column}: metadata {wanted.get(column)}, "
                              f"migrations {got.get(column)}"
                              for column in sorted(wanted.keys() | got.keys())
                              if wanted.get(column) != got.get(column)]
                elif got != wanted:
                    found.append(f"{table} {aspect}: metadata {wanted}, migrations {got}")
    return found


@pytest.fixture
def two_databases(db_url: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """``db_url`` and a second fresh, empty database of the same kind."""
    if db_url.startswith("sqlite"):
        yield db_url, f"sqlite:///{tmp_path / 'other.db'}"
        return
    with ExitStack() as stack:
        yield db_url, stack.enter_context(fresh_database(request.getfixturevalue("postgres_server")))


def test_migrations_to_head_make_exactly_what_create_all_of_log_schema_makes(
        two_databases: tuple[str, str]) -> None:
    """Guards drift between log/schema.py and log/migrations/versions.

    When log/schema.py changes, the next revision must follow (log/migrations/README.md): until
    it does, this test fails and names the tables, columns, constraints, indexes or triggers
    that differ.
    """
    migrated, created = two_databases
    engine = create_engine(migrated)
    migrate.upgrade(engine)
    engine.dispose()
    engine = create_engine(created)
    current_metadata.create_all(engine)
    engine.dispose()

    drift = differences(schema_of(migrated), schema_of(created))
    assert not drift, "log/schema.py and the migrations differ:\n" + "\n".join(drift)


def test_revision_0001_makes_exactly_what_releases_before_migrations_made(
        two_databases: tuple[str, str]) -> None:
    """The baseline stamp is true: an old database is what revision 0001 makes."""
    migrated, created = two_databases
    engine = create_engine(migrated)
    migrate.upgrade(engine, to=migrate.BASELINE)
    engine.dispose()
    engine = create_engine(created)
    old.metadata.create_all(engine)
    engine.dispose()

    assert revision(migrated) == migrate.BASELINE
    assert differences(schema_of(migrated), schema_of(created)) == []
