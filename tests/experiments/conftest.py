"""``start_sqlite``: a real server on a SQLite file (the statistical tests run on one engine)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from server.app import App, Settings
from server.config import parse_config


@pytest.fixture
def start_sqlite(tmp_path: Path) -> Iterator[Callable[..., App]]:
    """``start_sqlite(config_dict, **settings)``; the same ``tmp_path`` database every call."""
    apps: list[App] = []

    def start(config: dict[str, Any], **settings: Any) -> App:
        db = settings.pop("db", f"sqlite:///{tmp_path / 'arbiter.db'}")
        app = App(Settings(listen="127.0.0.1:0", db=db, **settings), parse_config(config))
        app.start()
        apps.append(app)
        return app

    yield start
    for app in apps:
        app.stop(grace=1)
