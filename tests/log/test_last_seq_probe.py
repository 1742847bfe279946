"""The fold's poll question (``store.LastSeqProbe``): fresh on every call, on both databases."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from arbiter.log import migrate, store
from arbiter.log.engine import create_engine


def test_probe_sees_every_commit_of_another_connection(db_url: str) -> None:
    """It holds no snapshot between calls: each sees what others committed meanwhile."""
    engine = create_engine(db_url)
    migrate.upgrade(engine)
    probe = store.LastSeqProbe(engine)
    try:
        assert probe() == 0
        for expected in (3, 10):
            with engine.begin() as connection:
                store.take_seqs(connection, expected - store.last_seq(connection))
            assert probe() == expected
    finally:
        probe.close()
        engine.dispose()


def test_a_failed_probe_raises_and_the_next_one_reconnects(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A broken question is an OperationalError (the tail treats it as the database being
    down), and the probe opens a fresh connection for the next call."""
    engine = create_engine(f"sqlite:///{tmp_path / 'a.db'}")
    migrate.upgrade(engine)
    probe = store.LastSeqProbe(engine)
    try:
        assert probe() == 0
        with engine.begin() as connection:
            connection.exec_driver_sql("ALTER TABLE learning_order RENAME TO moved")
        with pytest.raises(sa.exc.OperationalError):
            probe()
        with engine.begin() as connection:
            connection.exec_driver_sql("ALTER TABLE moved RENAME TO learning_order")
        assert probe() == 0
    finally:
        probe.close()
        engine.dispose()
