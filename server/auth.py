"""Tokens with roles: who may call what, on which experiments (``arbiter serve --auth-tokens``).

The token file is TOML, one ``[[tokens]]`` table per caller::

    [[tokens]]
    name = "checkout-service"      # the principal, recorded in audit rows and logs
    sha256 = "9f86d081..."         # hex SHA-256 of the token; the token itself is never stored
    roles = ["decide"]             # decide | read | admin
    experiments = ["homepage"]     # optional; default: every experiment

A caller sends ``authorization: Bearer <token>`` metadata (anywhere among its metadata).
:meth:`Tokens.authorize` hashes the token with SHA-256 and compares the digest with every
entry's with :func:`hmac.compare_digest`, so neither the comparison's time nor the stored
digests tell anything about a token. Roles:

- ``decide``: every ``DecisionService`` method (Choose, Reward, Activate, ...);
- ``read``: ``ListExperiments``, ``GetExperiment``, ``GetReport``;
- ``admin``: ``read`` and every other ``ExperimentService`` method (SetTraffic, Promote, ...).

No token, or one no entry has → UNAUTHENTICATED; a known token without the method's role →
PERMISSION_DENIED; an experiment outside the token's ``experiments`` (or an event of one) →
NOT_FOUND with the message an unknown experiment gets, so nothing can be enumerated. The
server keeps the current :class:`Tokens` in one attribute and replaces it whole on SIGHUP.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import string
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arbiter.server.errors import NotFound, PermissionDenied, Unauthenticated

log = logging.getLogger(__name__)

DECIDE, READ, ADMIN = "decide", "read", "admin"
ROLES = (DECIDE, READ, ADMIN)
# What each role grants besides itself.
IMPLIES: dict[str, frozenset[str]] = {DECIDE: frozenset(), READ: frozenset(),
                                      ADMIN: frozenset({READ})}
DECISION_SERVICE = "arbiter.v1.DecisionService"
EXPERIMENT_SERVICE = "arbiter.v1.ExperimentService"
READ_METHODS = frozenset({"ListExperiments", "GetExperiment", "GetReport"})
MAX_NAME_LENGTH = 128  # a principal is stored in the audit columns (VARCHAR(128))
_KEYS = frozenset({"name", "sha256", "roles", "experiments"})
_BEARER = "bearer "


class TokenFileError(ValueError):
    """The token file cannot be used; the message names the file, the entry and the key."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: ``name`` (for audit rows and logs), the roles it holds (implied ones
    included), and the experiments it may see (``None``: every experiment)."""

    name: str
    roles: frozenset[str]
    experiments: frozenset[str] | None = None

    def sees(self, experiment: str) -> bool:
        return self.experiments is None or experiment in self.experiments


@dataclass(frozen=True, slots=True)
class _Entry:
    digest: bytes  # SHA-256 of the token, 32 bytes
    principal: Principal


class Tokens:
    """An immutable set of token entries (one parsed token file)."""

    def __init__(self, entries: Sequence[_Entry] = ()) -> None:
        self._entries = tuple(entries)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def principals(self) -> list[Principal]:
        return [entry.principal for entry in self._entries]

    def principal(self, token: str) -> Principal | None:
        """The principal whose entry has ``token``'s digest, or None. Every entry is compared
        (constant time per entry), so the time taken depends only on the number of entries."""
        digest = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
        found = None
        for entry in self._entries:
            if hmac.compare_digest(digest, entry.digest):
                found = entry.principal
        return found

    def authorize(self, metadata: Iterable[tuple[str, str | bytes]] | None,
                  role: str) -> Principal:
        """The caller of ``metadata`` if it holds ``role``; raises Unauthenticated or
        PermissionDenied otherwise."""
        token = bearer_token(metadata)
        if token is None:
            raise Unauthenticated("this server needs `authorization: Bearer <token>` metadata")
        principal = self.principal(token)
        if principal is None:
            raise Unauthenticated("unknown token")
        if role not in principal.roles:
            raise PermissionDenied(f"token {principal.name!r} does not have the {role!r} role")
        return principal


def bearer_token(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    """The token of the one ``authorization: Bearer <token>`` entry of ``metadata`` (keys are
    lower case in gRPC), wherever it is; None when there is none, several, or another scheme."""
    found: str | None = None
    count = 0
    for key, value in metadata or ():
        if key == "authorization":
            count += 1
            found = value if isinstance(value, str) else None
    if count != 1 or found is None or found[:7].lower() != _BEARER:
        return None
    token = found[7:].strip()
    return token or None


def required_role(service: str, method: str) -> str:
    """The role a method needs: ``decide`` for the DecisionService, ``read`` for the
    ExperimentService's reads, ``admin`` for anything else (every write, and methods added
    later unless they are listed as reads here)."""
    if service == DECISION_SERVICE:
        return DECIDE
    if service == EXPERIMENT_SERVICE and method in READ_METHODS:
        return READ
    return ADMIN


def check_visible(principal: Principal | None, experiment: str) -> None:
    """NOT_FOUND (the message of an unknown experiment) when ``principal`` may not see
    ``experiment``. An empty name passes, for the method's own "is required" check."""
    if principal is not None and experiment and not principal.sees(experiment):
        raise NotFound(f"experiment {experiment!r} is not configured")


def sha256_hex(token: str) -> str:
    """What a token file's ``sha256`` holds for ``token``."""
    return hashlib.sha256(token.encode()).hexdigest()


# ------------------------------------------------------------------------------------ the file
def load_tokens(path: str | Path) -> Tokens:
    """Parse a token file; :class:`TokenFileError` names the file, the entry and the key."""
    path = Path(path)
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise TokenFileError(f"{path}: cannot read the token file: {error.strerror or error}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise TokenFileError(f"{path}: not valid TOML: {error}") from None
    return parse_tokens(document, source=str(path))


def parse_tokens(document: dict[str, Any], *, source: str = "token file") -> Tokens:
    unknown = sorted(set(document) - {"tokens"})
    if unknown:
        raise TokenFileError(f"{source}: unknown key {unknown[0]!r} (only [[tokens]] tables)")
    tables = document.get("tokens", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise TokenFileError(f"{source}: `tokens` must be an array of tables ([[tokens]])")
    entries: list[_Entry] = []
    names: dict[str, int] = {}
    digests: dict[bytes, str] = {}
    for number, table in enumerate(tables, start=1):
        entry = _entry(table, f"{source}: [[tokens]] entry {number}")
        name = entry.principal.name
        where = f"{source}: [[tokens]] entry {number} ({name!r})"
        if name in names:
            raise TokenFileError(f"{where}: `name` {name!r} is already used by entry {names[name]}")
        if entry.digest in digests:
            raise TokenFileError(f"{where}: `sha256` is the same as entry {digests[entry.digest]!r}'s")
        names[name] = number
        digests[entry.digest] = name
        entries.append(entry)
    return Tokens(entries)


def _entry(table: dict[str, Any], where: str) -> _Entry:
    name = table.get("name")
    if isinstance(name, str) and name:
        where = f"{where} ({name!r})"
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise TokenFileError(f"{where}: unknown key {unknown[0]!r} "
                             f"(known: {', '.join(sorted(_KEYS))})")
    if not isinstance(name, str) or not name.strip():
        raise TokenFileError(f"{where}: `name` must be a non-empty string, got {name!r}")
    if len(name) > MAX_NAME_LENGTH:
        raise TokenFileError(f"{where}: `name` must be at most {MAX_NAME_LENGTH} characters, "
                             f"got {len(name)}")
    digest_hex = table.get("sha256")
    if not isinstance(digest_hex, str) or len(digest_hex) != 64 or not _is_hex(digest_hex):
        shown = digest_hex if not isinstance(digest_hex, str) else f"{len(digest_hex)} characters"
        raise TokenFileError(f"{where}: `sha256` must be the 64 hex digits of the token's "
                             f"SHA-256, got {shown!r}")
    roles = table.get("roles")
    if not isinstance(roles, list) or not roles:
        raise TokenFileError(f"{where}: `roles` must be a non-empty list of "
                             f"{' | '.join(ROLES)}, got {roles!r}")
    granted: set[str] = set()
    for role in roles:
        if role not in ROLES:
            raise TokenFileError(f"{where}: `roles` has {role!r}; roles are {' | '.join(ROLES)}")
        granted |= {role, *IMPLIES[role]}
    experiments = table.get("experiments")
    allowed: frozenset[str] | None = None
    if experiments is not None:
        if not isinstance(experiments, list) or not all(
                isinstance(e, str) and e for e in experiments):
            raise TokenFileError(f"{where}: `experiments` must be a list of experiment names, "
                                 f"got {experiments!r}")
        allowed = frozenset(experiments)
    return _Entry(digest=bytes.fromhex(digest_hex),
                  principal=Principal(name=name, roles=frozenset(granted), experiments=allowed))


def _is_hex(text: str) -> bool:
    return all(c in string.hexdigits for c in text)
