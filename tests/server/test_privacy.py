"""Keyed pseudonyms under the server's secret, hashed features, and their settings.

Through real servers (SQLite and PostgreSQL where storage is involved): the unit is stored as
HMAC-SHA256 under the secret (made beside an SQLite file, 0600; required for PostgreSQL), the
bucket assignment is unchanged, rows of the old unkeyed form are still found by erasure, and a
hashed feature's raw value never reaches the database while learning is unchanged.
"""

from __future__ import annotations

import hashlib
import hmac
import stat
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import numpy as np
import pytest
import sqlalchemy as sa

from arbiter.client import DecisionClient, InvalidArgumentError
from arbiter.log import store
from arbiter.log.engine import create_engine
from arbiter.log.migrate import upgrade
from arbiter.log.schema import decisions
from arbiter.log.store import DecisionRecord, Learning
from arbiter.policies import Decision, Namespace, create
from arbiter.server.app import App, Settings
from arbiter.server.assignment import BUCKETS, legacy_pseudonym, pseudonym
from arbiter.server.config import ConfigError, parse_config
from arbiter.server.privacy import SecretError, feature_hash, hash_features, hashed_table
from arbiter.v1 import experiments_pb2 as pb
from arbiter.v1 import experiments_pb2_grpc
from tests.postgres import fresh_database, secret_settings
from tests.process import ROOT
from tests.replay import replayed_states

StartServer = Callable[..., App]
TWO = {"experiments": {"homepage": {
    "variants": [{"name": "a", "policy": "uniform", "traffic": 1.0},
                 {"name": "b", "policy": "uniform", "traffic": 1.0}]}}}
HASHED = {"experiments": {"homepage": {
    "policy": "linucb", "hashed_features": ["user.email", "item.sku"]}}}


def rows(app: App) -> list[dict[str, object]]:
    with app.engine.connect() as connection:
        return [dict(r) for r in connection.execute(
            sa.select(decisions).order_by(decisions.c.id)).mappings()]


# ------------------------------------------------------------------------------ pseudonyms
def test_units_are_keyed_pseudonyms_under_a_secret_made_beside_the_sqlite_file(
        tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'a.db'}"
    app = App(Settings(listen="127.0.0.1:0", db=db), parse_config(TWO))
    app.start()
    try:
        secret = tmp_path / "arbiter.secret"
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        key = secret.read_bytes().strip()
        assert len(key) == 64 and app.secret == key
        with DecisionClient(f"127.0.0.1:{app.port}") as client:
            served = {unit: client.choose("homepage", actions=["x"], unit_id=unit).variant
                      for unit in (f"user-{i}" for i in range(40))}
        [first, *_] = rows(app)
        expected = hmac.new(key, b"unit:homepage:user-0", hashlib.sha256).hexdigest()
        assert first["unit_hash"] == expected == pseudonym(key, "homepage", "user-0")
        assert first["unit_hash"] != legacy_pseudonym("homepage", "user-0")
        # stickiness is what it was: the bucket of sha256(salt:unit), not the pseudonym
        table = app.experiments["homepage"].table
        for unit, variant in served.items():
            digest = hashlib.sha256(f"homepage:{unit}".encode()).digest()
            assert table[int.from_bytes(digest[:8], "big") % BUCKETS] == variant
        assert set(served.values()) == {"a", "b"}
    finally:
        app.stop(grace=1)

    again = App(Settings(listen="127.0.0.1:0", db=db), parse_config(TWO))  # the same secret
    again.start()
    try:
        with DecisionClient(f"127.0.0.1:{again.port}") as client:
            client.choose("homepage", actions=["x"], unit_id="user-0")
        assert rows(again)[-1]["unit_hash"] == expected
    finally:
        again.stop(grace=1)


def test_postgresql_needs_a_secret_file_exit_2_and_one_line(
        postgres_server: str, tmp_path: Path) -> None:
    config = tmp_path / "experiments.toml"
    config.write_text('[experiments.homepage]\npolicy = "uniform"\n')
    with fresh_database(postgres_server) as url:
        with pytest.raises(SecretError):
            App(Settings(listen="127.0.0.1:0", db=url), parse_config(TWO))
        for extra in ([], ["--secret-file", str(tmp_path / "missing.secret")]):
            result = subprocess.run(
                [sys.executable, "-m", "arbiter.cli", "serve", "--listen", "127.0.0.1:0",
                 "--db", url, "--config", str(config), *extra],
                cwd=ROOT, capture_output=True, text=True, timeout=60)
            err = result.stderr.strip().splitlines()
            assert result.returncode == 2, result.stderr
            assert len(err) == 1 and "secret" in err[0], err
        assert not (tmp_path / "missing.secret").exists()  # never made for PostgreSQL


def test_erasure_finds_decisions_stored_with_the_old_unkeyed_pseudonym(
        db_url: str, start_server: StartServer, tmp_path: Path) -> None:
    engine = create_engine(db_url)
    upgrade(engine)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rng = np.random.default_rng(1)
    records = [DecisionRecord(
        event_id=f"old{i}", experiment="homepage", variant="default", model_version="linucb@0",
        unit_hash=legacy_pseudonym("homepage", "old-user" if i % 3 == 0 else f"other{i}"),
        decision=Decision(context=(Namespace("user", numbers={"x": float(rng.random())}),),
                          action_ids=("a", "b"), action_features=((), ())),
        distribution=(0.5, 0.5), chosen=i % 2, shadow={}, deferred=False,
        created_at=start + timedelta(seconds=i)) for i in range(30)]
    with engine.begin() as connection:
        store.insert_decisions(connection, records)
        connection.execute(sa.text("DELETE FROM windows"))
        first = store.take_seqs(connection, len(records))
        store.insert_learnings(connection, first, [
            Learning(experiment="homepage", event_id=r.event_id, value=float(i % 2),
                     learned_at=r.created_at) for i, r in enumerate(records)])
    engine.dispose()
    app = start_server({"experiments": {"homepage": {"policy": "linucb"}}})
    with DecisionClient(f"127.0.0.1:{app.port}") as client:
        for i in range(6):  # and new rows with the keyed form
            choice = client.choose("homepage", context={"user": {"x": i / 6}}, actions=["a", "b"],
                                   unit_id="old-user")
            client.reward(choice.event_id, 1.0)
    with grpc.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        answer = experiments_pb2_grpc.ExperimentServiceStub(channel).EraseUnit(
            pb.EraseUnitRequest(unit_id="old-user", request_id="old"), timeout=60)
    assert answer.decisions_deleted == 10 + 6
    assert answer.learned_events_deleted == 10 + 6
    assert list(answer.rebuilt_experiments) == ["homepage"]
    config = tmp_path / "experiments.toml"
    config.write_text('[experiments.homepage]\npolicy = "linucb"\n')
    with app.fold.lock:
        live = {("homepage", v.name): v.state()
                for v in app.experiments["homepage"].variants.values()}
    assert live == replayed_states(db_url, config)


# ------------------------------------------------------------------------------ hashed features
def test_hashed_features_never_reach_the_log(db_url: str, start_server: StartServer) -> None:
    app = start_server(HASHED)
    with DecisionClient(f"127.0.0.1:{app.port}") as client:
        for i in range(3):
            choice = client.choose(
                "homepage", context={"user": {"email": "alice.raw@example.com", "age": 30 + i}},
                actions=[{"id": "a", "features": {"item": {"sku": "SKU-RAW-123", "kind": "k1"}}},
                         {"id": "b", "features": {"item": {"sku": "SKU-RAW-456"}}}],
                unit_id="alice")
            client.reward(choice.event_id, 1.0)
        before = len(rows(app))
        with pytest.raises(InvalidArgumentError, match=r"context\[0\]\.numbers\['email'\]"):
            client.choose("homepage", context={"user": {"email": 5}}, actions=["a"])
        assert len(rows(app)) == before  # refused before anything was written

    row = rows(app)[0]
    email = feature_hash(app.secret, "homepage", "user", "email", "alice.raw@example.com")
    assert row["context"] == [{"name": "user", "numbers": {"age": 30.0},
                               "categories": {"email": email}}]
    actions = row["actions"]
    assert isinstance(actions, list)
    assert actions[0]["features"][0]["categories"] == {
        "sku": feature_hash(app.secret, "homepage", "item", "sku", "SKU-RAW-123"), "kind": "k1"}
    assert {r["context"][0]["categories"]["email"] for r in rows(app)} == {email}  # type: ignore[index]
    raw = (b"alice.raw@example.com", b"SKU-RAW-123", b"SKU-RAW-456", b"alice")
    if db_url.startswith("sqlite"):
        path = Path(db_url.removeprefix("sqlite:///"))
        content = path.read_bytes() + path.with_name(path.name + "-wal").read_bytes()
    else:
        with app.engine.connect() as connection:
            content = "\n".join(connection.execute(sa.text(
                "SELECT context::text || actions::text || coalesce(unit_hash, '') "
                "FROM decisions")).scalars()).encode()
    for value in raw:
        assert value not in content, value


def test_learning_on_hashed_features_is_unchanged() -> None:
    """A one-hot of a keyed hash is the same feature: the same updates give the same
    distributions on the same (hashed vs raw) decisions."""
    table = hashed_table(("user.email",))
    rng = np.random.default_rng(5)
    emails = [f"person{i}@example.com" for i in range(6)]

    def decision(email: str, x: float) -> Decision:
        return Decision(context=(Namespace("user", {"x": x}, {"email": email}),),
                        action_ids=("a", "b", "c"), action_features=((), (), ()))

    for name in ("linucb", "lints", "epsilon_greedy"):
        plain, hashed = create(name, {}), create(name, {})
        for _ in range(120):
            raw = decision(emails[int(rng.integers(6))], float(rng.random()))
            chosen, reward = int(rng.integers(3)), float(rng.random() < 0.4)
            plain.update(raw, chosen, reward, 1 / 3)
            hashed.update(hash_features(raw, table, b"k" * 32, "s"), chosen, reward, 1 / 3)
        for email in emails:
            raw = decision(email, 0.5)
            seed = int(rng.integers(1 << 30))
            assert np.array_equal(
                plain.distribution(raw, np.random.default_rng(seed)),
                hashed.distribution(hash_features(raw, table, b"k" * 32, "s"),
                                    np.random.default_rng(seed))), name


@pytest.mark.parametrize(("key", "value", "message"), [
    ("hashed_features", "user.email", "`hashed_features` must be an array"),
    ("hashed_features", ["email"], "entries must look like \"namespace.feature\""),
    ("hashed_features", ["user."], "entries must look like \"namespace.feature\""),
    ("hashed_features", ["user.email", "user.email"], "lists 'user.email' twice"),
    ("retention_days", 0, "`retention_days` must be a number of days > 0"),
    ("retention_days", "30", "`retention_days` must be a number of days > 0"),
])
def test_privacy_settings_are_checked_naming_experiment_and_key(
        key: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match="experiment `homepage`") as error:
        parse_config({"experiments": {"homepage": {"policy": "uniform", key: value}}})
    assert message in str(error.value)


def test_settings_parse() -> None:
    config = parse_config({"experiments": {"homepage": {
        "policy": "uniform", "hashed_features": ["user.email"], "retention_days": 30}}})
    assert config["homepage"].hashed_features == ("user.email",)
    assert config["homepage"].retention_days == 30.0
    assert secret_settings("sqlite:///x.db") == {}
