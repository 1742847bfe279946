"""``start_sqlite``: a real server on a SQLite file (the statistical tests run on one engine)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from arbiter.server.app import App
from tests.conftest import running_apps


@pytest.fixture
def start_sqlite(tmp_path: Path) -> Iterator[Callable[..., App]]:
    """``start_sqlite(config_dict, **settings)``; the same ``tmp_path`` database every call."""
    yield from running_apps(f"sqlite:///{tmp_path / 'arbiter.db'}")
