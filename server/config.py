"""``experiments.toml``: experiments, their variants and reward settings.

The single-policy form::

    [experiments.homepage]
    policy = "linucb"
    params = { alpha = 0.5 }

is one serving variant named ``default`` with all the traffic. The multi-variant form lists
``[[experiments.NAME.variants]]`` tables (``name``, ``policy``, ``params``, ``traffic``,
``shadow``, ``warm_start``, ``mode``, ``logging_epsilon``) and names the ``control``. Every error
names the experiment and the key, and stops the server at start.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arbiter.policies import PolicyConfigError, create

SINGLE_VARIANT = "default"
AGGREGATIONS = ("first", "sum")
DEFAULT_REWARD_RANGE = (-1e6, 1e6)  # rewards outside are refused: INVALID_ARGUMENT naming `value`

EXPERIMENT_KEYS = {
    "policy", "params", "variants", "control", "salt", "reward_wait_seconds", "default_reward",
    "reward_aggregation", "auto_promote", "segment_by", "reward_range",
    "hashed_features", "retention_days", "mode", "logging_epsilon",
}
SINGLE_VARIANT_KEYS = ("mode", "logging_epsilon")  # the single-policy form's variant keys
VARIANT_KEYS = {"name", "policy", "params", "traffic", "shadow", "warm_start", "mode",
                "logging_epsilon"}


class ConfigError(ValueError):
    """The configuration is invalid; the message names the experiment and the key."""


MODES = ("online", "apprentice", "logging")
DEFAULT_LOGGING_EPSILON = 0.1


@dataclass(frozen=True)
class VariantConfig:
    name: str
    policy: str
    params: Mapping[str, Any] = field(default_factory=dict)
    traffic: float = 0.0
    shadow: bool = False
    # True: until a set-up version lists it, the variant learns every logged decision, as a
    # shadow would (a challenger added to a running experiment starts from the whole log);
    # False: it learns nothing before it is listed (it starts cold).
    warm_start: bool = False
    # How it serves (see MODES): "online" (its policy decides and learns), "apprentice" (the
    # caller's baseline action is served and the policy learns from its outcome), "logging"
    # (the baseline with probability 1 - logging_epsilon + logging_epsilon / K, every other
    # action with logging_epsilon / K; nothing is learned).
    mode: str = "online"
    logging_epsilon: float = DEFAULT_LOGGING_EPSILON


@dataclass(frozen=True)
class AutoPromote:
    min_decisions: int = 5000
    confidence: float = 0.95


@dataclass(frozen=True)
class ExperimentConfig:
    name: str
    variants: tuple[VariantConfig, ...]
    control: str
    salt: str
    reward_wait_seconds: float = 3600.0
    default_reward: float = 0.0
    reward_aggregation: str = "first"
    auto_promote: AutoPromote | None = None
    segment_by: str | None = None
    reward_range: tuple[float, float] = DEFAULT_REWARD_RANGE  # [low, high], both accepted
    # "namespace.feature"s whose category values are replaced by keyed hashes (server/privacy.py)
    hashed_features: tuple[str, ...] = ()
    # Learned events older than this are deleted once a snapshot covers them; None: kept
    retention_days: float | None = None

    def variant(self, name: str) -> VariantConfig:
        for variant in self.variants:
            if variant.name == name:
                return variant
        raise KeyError(name)


def load_config(path: str | Path) -> dict[str, ExperimentConfig]:
    """Parse and validate a TOML file; every policy is built once to check its parameters."""
    try:
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"cannot read config {path}: {error}") from error
    return parse_config(document)


def parse_config(document: Mapping[str, Any]) -> dict[str, ExperimentConfig]:
    experiments = document.get("experiments")
    if not isinstance(experiments, Mapping) or not experiments:
        raise ConfigError("the config has no [experiments.NAME] table")
    return {name: _parse_experiment(name, table) for name, table in experiments.items()}


def _parse_experiment(name: str, table: Any) -> ExperimentConfig:
    where = f"experiment `{name}`"
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: must be a table")
    unknown = sorted(set(table) - EXPERIMENT_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key `{unknown[0]}`")
    if ("policy" in table) == ("variants" in table):
        raise ConfigError(f"{where}: give either `policy` or `variants`")
    if "policy" in table:
        variants: tuple[VariantConfig, ...] = (
            _parse_variant(where, {"name": SINGLE_VARIANT, "policy": table["policy"],
                                   "params": table.get("params", {}), "traffic": 1.0,
                                   **{k: table[k] for k in SINGLE_VARIANT_KEYS if k in table}}),
        )
    else:
        for key in ("params", *SINGLE_VARIANT_KEYS):
            if key in table:
                raise ConfigError(f"{where}: `{key}` belongs to a variant")
        raw = table["variants"]
        if not isinstance(raw, list) or not raw:
            raise ConfigError(f"{where}: `variants` must be a non-empty array of tables")
        variants = tuple(_parse_variant(where, item) for item in raw)
    _check_variants(where, variants)
    serving = [v for v in variants if not v.shadow]
    control = table.get("control", serving[0].name)
    if control not in {v.name for v in serving}:
        raise ConfigError(f"{where}: `control` = {control!r} is not a serving variant")
    aggregation = table.get("reward_aggregation", "first")
    if aggregation not in AGGREGATIONS:
        raise ConfigError(f"{where}: `reward_aggregation` must be one of {AGGREGATIONS}, "
                          f"got {aggregation!r}")
    wait = _number(where, table, "reward_wait_seconds", 3600.0)
    if wait <= 0:
        raise ConfigError(f"{where}: `reward_wait_seconds` must be > 0, got {wait}")
    segment_by = table.get("segment_by")
    if segment_by is not None and (not isinstance(segment_by, str) or "." not in segment_by):
        raise ConfigError(f"{where}: `segment_by` must look like \"namespace.feature\", "
                          f"got {segment_by!r}")
    reward_range = _parse_reward_range(where, table.get("reward_range", DEFAULT_REWARD_RANGE))
    default_reward = _number(where, table, "default_reward", 0.0)
    if not reward_range[0] <= default_reward <= reward_range[1]:
        raise ConfigError(f"{where}: `default_reward` = {default_reward:g} is outside "
                          f"`reward_range` [{reward_range[0]:g}, {reward_range[1]:g}]")
    return ExperimentConfig(
        name=name, variants=variants, control=control,
        salt=str(table.get("salt", name)),
        reward_wait_seconds=wait,
        default_reward=default_reward,
        reward_aggregation=aggregation,
        auto_promote=_parse_auto_promote(where, table.get("auto_promote")),
        segment_by=segment_by,
        reward_range=reward_range,
        hashed_features=_parse_hashed_features(where, table.get("hashed_features", [])),
        retention_days=_parse_retention_days(where, table.get("retention_days")),
    )


def _parse_hashed_features(where: str, raw: Any) -> tuple[str, ...]:
    """``["namespace.feature", ...]``: distinct, each with a non-empty namespace and feature."""
    if not isinstance(raw, list):
        raise ConfigError(f"{where}: `hashed_features` must be an array of \"namespace.feature\" "
                          f"strings, got {raw!r}")
    for item in raw:
        if not isinstance(item, str) or "." not in item or not all(item.split(".", 1)):
            raise ConfigError(f"{where}: `hashed_features` entries must look like "
                              f"\"namespace.feature\", got {item!r}")
    if len(set(raw)) != len(raw):
        duplicate = next(item for item in raw if raw.count(item) > 1)
        raise ConfigError(f"{where}: `hashed_features` lists {duplicate!r} twice")
    return tuple(raw)


def _parse_retention_days(where: str, raw: Any) -> float | None:
    """A positive finite number of days, or absent (keep everything)."""
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw) \
            or raw <= 0:
        raise ConfigError(f"{where}: `retention_days` must be a number of days > 0, got {raw!r}")
    return float(raw)


def _parse_reward_range(where: str, raw: Any) -> tuple[float, float]:
    """``[low, high]``: two finite numbers, ``low < high``."""
    if not isinstance(raw, list | tuple) or len(raw) != 2 or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            for v in raw):
        raise ConfigError(f"{where}: `reward_range` must be [low, high], two finite numbers, "
                          f"got {raw!r}")
    low, high = float(raw[0]), float(raw[1])
    if not low < high:
        raise ConfigError(f"{where}: `reward_range` must have low < high, got [{low:g}, {high:g}]")
    return low, high


def _parse_variant(where: str, item: Any) -> VariantConfig:
    if not isinstance(item, Mapping):
        raise ConfigError(f"{where}: each variant must be a table")
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}: every variant needs a non-empty `name`")
    where = f"{where}, variant `{name}`"
    unknown = sorted(set(item) - VARIANT_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key `{unknown[0]}`")
    policy = item.get("policy")
    params = item.get("params", {})
    if not isinstance(policy, str):
        raise ConfigError(f"{where}: `policy` must be a registry name")
    if not isinstance(params, Mapping):
        raise ConfigError(f"{where}: `params` must be a table")
    try:
        create(policy, params)
    except PolicyConfigError as error:
        raise ConfigError(f"{where}: {error}") from error
    shadow = item.get("shadow", False)
    if not isinstance(shadow, bool):
        raise ConfigError(f"{where}: `shadow` must be true or false")
    traffic = _number(where, item, "traffic", 0.0 if shadow else 1.0)
    if shadow and traffic != 0.0:
        raise ConfigError(f"{where}: a shadow variant takes no `traffic`")
    if traffic < 0:
        raise ConfigError(f"{where}: `traffic` must be >= 0, got {traffic}")
    warm_start = item.get("warm_start", False)
    if not isinstance(warm_start, bool):
        raise ConfigError(f"{where}: `warm_start` must be true or false")
    mode = item.get("mode", "online")
    if mode not in MODES:
        raise ConfigError(f"{where}: `mode` must be one of {', '.join(MODES)}, got {mode!r}")
    epsilon = _number(where, item, "logging_epsilon", DEFAULT_LOGGING_EPSILON)
    if not 0.0 <= epsilon <= 1.0:
        raise ConfigError(f"{where}: `logging_epsilon` must be within [0, 1], got {epsilon}")
    return VariantConfig(name=name, policy=policy, params=dict(params), traffic=traffic,
                         shadow=shadow, warm_start=warm_start, mode=mode,
                         logging_epsilon=epsilon)


def _check_variants(where: str, variants: tuple[VariantConfig, ...]) -> None:
    names = [v.name for v in variants]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"{where}: variant name `{duplicates[0]}` is used twice")
    serving = [v for v in variants if not v.shadow]
    if not serving:
        raise ConfigError(f"{where}: needs at least one serving (non-shadow) variant")
    if sum(v.traffic for v in serving) <= 0:
        raise ConfigError(f"{where}: the serving variants' `traffic` must add up to more than 0")


def _parse_auto_promote(where: str, raw: Any) -> AutoPromote | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: `auto_promote` must be a table")
    unknown = sorted(set(raw) - {"min_decisions", "confidence"})
    if unknown:
        raise ConfigError(f"{where}: unknown key `auto_promote.{unknown[0]}`")
    min_decisions = raw.get("min_decisions", 5000)
    confidence = raw.get("confidence", 0.95)
    if not isinstance(min_decisions, int) or min_decisions < 1:
        raise ConfigError(f"{where}: `auto_promote.min_decisions` must be a positive integer")
    if not isinstance(confidence, int | float) or not 0.5 <= confidence < 1:
        raise ConfigError(f"{where}: `auto_promote.confidence` must be in [0.5, 1), "
                          f"got {confidence!r}")
    return AutoPromote(min_decisions=min_decisions, confidence=float(confidence))


def _number(where: str, table: Mapping[str, Any], key: str, default: float) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{where}: `{key}` must be a finite number, got {value!r}")
    return float(value)
