"""Revision 0004 (audit principal): a database written at 0003 keeps its set-up history and
promotions, which get ``principal`` NULL (nobody was authenticated then); new rows can name one."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from arbiter.log import migrate
from arbiter.log.engine import create_engine

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def test_upgrading_from_0003_keeps_the_audit_rows_with_no_principal(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        migrate.upgrade(engine, to="0003")
        with engine.begin() as connection:
            connection.execute(sa.text(
                "INSERT INTO experiment_states (experiment, version, control, variants, "
                "bucket_table, reason, created_at) VALUES ('homepage', 1, 'a', :variants, "
                ":table, 'seeded', :at)"),
                {"variants": '[{"name": "a", "traffic": 1.0, "shadow": false}]',
                 "table": '[["a", 10000]]', "at": T0})
            connection.execute(sa.text(
                "INSERT INTO promotions (experiment, from_variant, to_variant, reason, evidence, "
                "automatic, state_version, created_at) VALUES ('homepage', 'a', 'b', 'manual', "
                "'{}', false, 2, :at)"), {"at": T0})

        migrate.upgrade(engine)

        with engine.begin() as connection:
            states = connection.execute(sa.text(
                "SELECT experiment, version, reason, principal FROM experiment_states")).all()
            audit = connection.execute(sa.text(
                "SELECT to_variant, reason, principal FROM promotions")).all()
            connection.execute(sa.text(
                "INSERT INTO promotions (experiment, from_variant, to_variant, reason, evidence, "
                "automatic, state_version, created_at, principal) VALUES ('homepage', 'b', 'a', "
                "'back', '{}', false, 3, :at, 'ops')"), {"at": T0})
            named = connection.execute(sa.text(
                "SELECT principal FROM promotions WHERE reason = 'back'")).scalar_one()
    finally:
        engine.dispose()
    assert [tuple(r) for r in states] == [("homepage", 1, "seeded", None)]
    assert [tuple(r) for r in audit] == [("b", "manual", None)]
    assert named == "ops"
