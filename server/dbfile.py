"""The SQLite file a server opened, checked every maintenance tick.

A server keeps its SQLite file open, so deleting it (or renaming another file over it) goes
unnoticed by SQLite: commits still succeed, into a file that no longer has a name, and are lost
at the next start. :class:`DatabaseFile` remembers the file's device and inode at start and
says what happened when the path no longer leads to that file.
"""

from __future__ import annotations

import os

import sqlalchemy as sa


class DatabaseFile:
    """The file at ``path`` as it was when this was made (it must exist then)."""

    def __init__(self, path: str) -> None:
        self.path = path
        found = os.stat(path)
        self._identity = (found.st_dev, found.st_ino)

    @classmethod
    def of(cls, url: str) -> DatabaseFile | None:
        """The file of an SQLite ``url``; None for another database or an in-memory one."""
        parsed = sa.engine.make_url(url)
        database = parsed.database
        if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:" \
                or database.startswith("file:"):
            return None
        return cls(os.path.abspath(database))

    def problem(self) -> str | None:
        """What happened to the file, or None while the path still leads to it."""
        try:
            found = os.stat(self.path)
        except FileNotFoundError:
            return f"the database file {self.path} was deleted under the running server"
        except OSError as error:
            return f"the database file {self.path} cannot be found: {error}"
        if (found.st_dev, found.st_ino) != self._identity:
            return (f"the database file {self.path} was replaced under the running server "
                    "(another file has its name now)")
        return None
