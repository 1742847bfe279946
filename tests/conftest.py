"""Shared fixtures: databases (SQLite file, real PostgreSQL) and a real in-process server."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from arbiter.server.app import App, Settings
from arbiter.server.config import parse_config
from tests.postgres import cluster_or_skip, fresh_database, secret_settings

DEMO = {"experiments": {"homepage": {"policy": "linucb", "params": {"alpha": 0.5}}}}


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """URL of a PostgreSQL server for the session: ARBITER_TEST_POSTGRES_URL or a throwaway cluster."""
    url = os.environ.get("ARBITER_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    cluster = cluster_or_skip()
    try:
        yield cluster.url
    finally:
        cluster.destroy()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file under tmp_path, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'arbiter.db'}"
        return
    with fresh_database(request.getfixturevalue("postgres_server")) as url:
        yield url


@pytest.fixture
def start_server(db_url: str) -> Iterator[Callable[..., App]]:
    """Start a real server on a free port: ``start_server(config_dict, **settings)``."""
    yield from running_apps(db_url, default_config=DEMO)


def running_apps(db_url: str, default_config: dict[str, Any] | None = None) -> Iterator[Callable[..., App]]:
    """Yield ``start(config, **settings)`` (default database ``db_url``); stop every app after."""
    apps: list[App] = []

    def start(config: dict[str, Any] | None = None, **settings: Any) -> App:
        chosen = config if config is not None else default_config
        if chosen is None:
            raise TypeError("start() needs a config")
        db = settings.pop("db", db_url)
        settings = {**secret_settings(db), **settings}  # PostgreSQL: the servers' one secret
        app = App(Settings(listen="127.0.0.1:0", db=db, **settings), parse_config(chosen))
        app.start()
        apps.append(app)
        return app

    yield start
    for app in apps:
        app.stop(grace=1)


@pytest.fixture
def server(start_server: Callable[..., App]) -> App:
    """The demo configuration (``homepage`` with LinUCB) served on a free port."""
    return start_server()


def count_rows(url: str) -> dict[str, int]:
    """Rows per table of the decision log, to check that bad input changes nothing."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            counts = {table: int(connection.execute(sa.text(f"SELECT count(*) FROM {table}"))
                                 .scalar() or 0) for table in ("decisions", "rewards")}
            counts["learnings"] = int(connection.execute(sa.text(
                "SELECT count(*) FROM learnings WHERE event_id IS NOT NULL")).scalar() or 0)
            return counts
    finally:
        engine.dispose()
