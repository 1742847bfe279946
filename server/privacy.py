"""The server's secret, and hashed features: what keeps raw identifiers out of the log.

The secret (``arbiter serve --secret-file``) keys two HMAC-SHA256s:

- unit pseudonyms (:func:`server.assignment.pseudonym`): ``decisions.unit_hash``;
- hashed features (an experiment's ``hashed_features = ["user.email", ...]``): the category
  value of each listed ``namespace.feature`` is replaced by :func:`feature_hash` before the
  decision is scored and logged, in the context and in the actions' features alike. A one-hot
  of a keyed hash is the same feature as a one-hot of the value, so learning is unchanged; the
  raw value never reaches the policies, the decision cache or the database.

Where the secret lives: ``--secret-file FILE``; by default ``arbiter.secret`` beside an SQLite
file, created on first start (32 random bytes, hex, mode 0600). PostgreSQL needs the file given
explicitly and never creates one: every server of a database must use the same secret, or their
pseudonyms would differ. Losing the secret does not lose data, but new decisions get new
pseudonyms (a returning unit counts as a new one) and erasure no longer finds the old ones.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import secrets
import stat
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

import sqlalchemy as sa

from arbiter.policies import Decision, Namespace
from arbiter.server.errors import InvalidArgument

log = logging.getLogger(__name__)

DEFAULT_NAME = "arbiter.secret"
MIN_SECRET_BYTES = 32  # the file's content (stripped): 64 hex characters when Arbiter made it


class SecretError(ValueError):
    """The secret cannot be used; the message is one line naming the file and what to do."""


def default_secret_file(db_url: str) -> Path | None:
    """``arbiter.secret`` beside an SQLite file; None for PostgreSQL (no default) and for an
    in-memory SQLite database (nothing outlives the process: a random key is used)."""
    url = sa.engine.make_url(db_url)
    if not url.drivername.startswith("sqlite"):
        return None
    if not url.database or url.database == ":memory:":
        return None
    return Path(url.database).resolve().parent / DEFAULT_NAME


def load_secret(secret_file: str | None, db_url: str) -> bytes:
    """The key for ``db_url``: read from ``secret_file`` (or the default beside an SQLite file,
    created if missing). Raises :class:`SecretError` for PostgreSQL without a file, and for a
    file that is missing (PostgreSQL), unreadable or too short."""
    sqlite = sa.engine.make_url(db_url).drivername.startswith("sqlite")
    if secret_file is None:
        if not sqlite:
            raise SecretError("a PostgreSQL database needs --secret-file FILE, the same file on "
                              "every server (make one with `openssl rand -hex 32 > FILE; "
                              "chmod 600 FILE`)")
        default = default_secret_file(db_url)
        if default is None:
            return secrets.token_bytes(MIN_SECRET_BYTES)  # in-memory database: nothing persists
        path = default
    else:
        path = Path(secret_file)
    if not path.exists():
        if not sqlite:
            raise SecretError(f"secret file {path} does not exist; every server of a PostgreSQL "
                              "database needs the same one (make it once with `openssl rand "
                              f"-hex 32 > {path}; chmod 600 {path}` and copy it to each)")
        _create(path)
    return _read(path)


def _create(path: Path) -> None:
    """Write a new secret to ``path`` (0600), atomically: processes starting together on a
    fresh SQLite file all end up reading the one that was linked first."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as error:
        raise SecretError(f"cannot create secret file {path}: {error.strerror}") from error
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_hex(MIN_SECRET_BYTES) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # another process made it first: use that
            os.link(temporary, path)
            log.warning("created a new secret for unit pseudonyms and hashed features: %s "
                        "(keep it, and back it up apart from the database)", path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def _read(path: Path) -> bytes:
    try:
        mode = path.stat().st_mode
        key = path.read_bytes().strip()
    except OSError as error:
        raise SecretError(f"cannot read secret file {path}: {error.strerror}") from error
    if len(key) < MIN_SECRET_BYTES:
        raise SecretError(f"secret file {path} holds {len(key)} bytes; it needs at least "
                          f"{MIN_SECRET_BYTES} (e.g. `openssl rand -hex 32`)")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("secret file %s can be read by other users (mode %o); chmod 600 it", path,
                    stat.S_IMODE(mode))
    return key


# ------------------------------------------------------------------------ hashed features
@lru_cache(maxsize=256)
def hashed_table(features: tuple[str, ...]) -> Mapping[str, frozenset[str]]:
    """``["user.email", "user.phone"]`` as ``{"user": {"email", "phone"}}``."""
    table: dict[str, set[str]] = {}
    for item in features:
        namespace, feature = item.split(".", 1)
        table.setdefault(namespace, set()).add(feature)
    return {namespace: frozenset(names) for namespace, names in table.items()}


def feature_hash(key: bytes, salt: str, namespace: str, feature: str, value: str) -> str:
    """The keyed hash that replaces a hashed feature's category value: HMAC-SHA256 under the
    server's secret, per experiment (``salt``) and feature, 32 hex characters (128 bits)."""
    message = f"feature:{salt}:{namespace}.{feature}:{value}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]


def hash_features(decision: Decision, hashed: Mapping[str, frozenset[str]], key: bytes,
                  salt: str) -> Decision:
    """``decision`` with the category values of the ``hashed`` features replaced by their
    :func:`feature_hash` (context and actions); the same object when none is present. A hashed
    feature sent as a number is refused (INVALID_ARGUMENT naming it): a number cannot be hashed
    into a category, and logging it as is would defeat the setting."""
    if not hashed:
        return decision
    context = _hash_namespaces(decision.context, hashed, key, salt, "context")
    actions = tuple(_hash_namespaces(features, hashed, key, salt, f"actions[{k}].features")
                    for k, features in enumerate(decision.action_features))
    if context is decision.context and all(
            new is old for new, old in zip(actions, decision.action_features, strict=True)):
        return decision
    return Decision(context=context, action_ids=decision.action_ids, action_features=actions)


def _hash_namespaces(namespaces: tuple[Namespace, ...], hashed: Mapping[str, frozenset[str]],
                     key: bytes, salt: str, where: str) -> tuple[Namespace, ...]:
    changed = False
    result: list[Namespace] = []
    for index, namespace in enumerate(namespaces):
        names = hashed.get(namespace.name)
        if names is None:
            result.append(namespace)
            continue
        for feature in names:
            if feature in namespace.numbers:
                raise InvalidArgument(f"{where}[{index}].numbers[{feature!r}]",
                                      f"`{namespace.name}.{feature}` is a hashed feature "
                                      "(`hashed_features`); send it as a category")
        if not names.intersection(namespace.categories):
            result.append(namespace)
            continue
        categories = {feature: (feature_hash(key, salt, namespace.name, feature, value)
                                if feature in names else value)
                      for feature, value in namespace.categories.items()}
        result.append(Namespace(namespace.name, namespace.numbers, categories))
        changed = True
    return tuple(result) if changed else namespaces
