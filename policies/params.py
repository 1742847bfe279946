"""Hyperparameters: validation helpers and the mixin that turns dataclass fields into ``params()``.

A policy is a ``@dataclass(kw_only=True)`` whose ``init`` fields are its hyperparameters and whose
``init=False`` fields are its private learned state. ``__post_init__`` validates each field with
the helpers below, which raise :class:`PolicyConfigError` naming the field and the value, and
return the value normalised (``int`` → ``float`` for real-valued fields, as TOML gives ``1``).

Each hyperparameter field also carries :func:`doc` metadata, its allowed range (as the validator
enforces it) and one line of meaning; :func:`describe` reads them back for the policy reference
(``arbiter policies``, ``docs/policies.md``).
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, fields
from typing import Any

from arbiter.policies.base import PolicyConfigError


def real(name: str, value: object, *, low: float, high: float = math.inf) -> float:
    """``value`` as a float in ``[low, high]``; booleans and non-finite numbers are refused."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PolicyConfigError(f"`{name}` must be a number, got {value!r}")
    number = float(value)
    if math.isnan(number) or number < low:
        raise PolicyConfigError(f"`{name}` must be >= {low:g}, got {value!r}")
    if number > high:
        raise PolicyConfigError(f"`{name}` must be <= {high:g}, got {value!r}")
    return number


def positive(name: str, value: object) -> float:
    """``value`` as a finite float ``> 0``."""
    number = real(name, value, low=0.0)
    if number == 0.0 or math.isinf(number):
        raise PolicyConfigError(f"`{name}` must be > 0 and finite, got {value!r}")
    return number


def count(name: str, value: object, *, low: int = 1) -> int:
    """``value`` as an ``int >= low``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise PolicyConfigError(f"`{name}` must be an integer, got {value!r}")
    if value < low:
        raise PolicyConfigError(f"`{name}` must be >= {low}, got {value!r}")
    return value


def text(name: str, value: object) -> str:
    """``value`` as a non-empty string."""
    if not isinstance(value, str) or not value:
        raise PolicyConfigError(f"`{name}` must be a non-empty string, got {value!r}")
    return value


def flag(name: str, value: object) -> bool:
    """``value`` as a bool (TOML ``true``/``false``)."""
    if not isinstance(value, bool):
        raise PolicyConfigError(f"`{name}` must be true or false, got {value!r}")
    return value


class Hyperparameters:
    """Mixin for dataclass policies: the ``init`` fields are the hyperparameters."""

    @classmethod
    def parameter_names(cls) -> tuple[str, ...]:
        """Names accepted by the constructor (and by ``registry.create``)."""
        return tuple(f.name for f in fields(cls) if f.init)  # type: ignore[arg-type]

    @classmethod
    def required_parameter_names(cls) -> tuple[str, ...]:
        """Hyperparameters without a default."""
        return tuple(
            f.name
            for f in fields(cls)  # type: ignore[arg-type]
            if f.init and f.default is MISSING and f.default_factory is MISSING
        )

    def params(self) -> dict[str, Any]:
        """The hyperparameters as ``{name: value}``, in declaration order."""
        return {name: getattr(self, name) for name in self.parameter_names()}


def doc(range: str, help: str) -> dict[str, str]:
    """Field metadata for the policy reference: the allowed ``range`` (what ``__post_init__``
    accepts, e.g. ``">= 0"``, ``"[0, 1]"``, ``"> 0"``, ``"integer >= 1"``) and one line of
    ``help``. Use as ``alpha: float = field(default=0.3, metadata=doc(">= 0", "..."))``."""
    return {"range": range, "help": help}


@dataclass(frozen=True, slots=True)
class Parameter:
    """One hyperparameter as the policy reference shows it; ``default`` is MISSING if required."""

    name: str
    type: str
    default: object
    range: str
    help: str

    @property
    def required(self) -> bool:
        return self.default is MISSING


def describe(cls: type) -> tuple[Parameter, ...]:
    """The hyperparameters of the dataclass policy ``cls`` in declaration order, with their
    :func:`doc` metadata; a field redeclared only to change its default (LinTS's ``l2``) keeps
    the metadata of the class it overrides. Raises ``TypeError`` naming a field without any."""
    described = []
    for f in fields(cls):
        if not f.init:
            continue
        metadata = next((g.metadata for klass in cls.__mro__
                         for g in getattr(klass, "__dataclass_fields__", {}).values()
                         if g.name == f.name and "help" in g.metadata), None)
        if metadata is None:
            raise TypeError(f"{cls.__name__}.{f.name} has no doc() metadata: give it a range and a help line")
        default = f.default if f.default_factory is MISSING else f.default_factory()
        described.append(Parameter(f.name, str(f.type), default, metadata["range"], metadata["help"]))
    return tuple(described)
