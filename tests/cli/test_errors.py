"""Every common mistake ends with one line on stderr saying what is wrong and what to do, and
exit code 2 (a wrong argument or configuration) or 1 (run time), never a traceback."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from arbiter.cli.checks import listen_problem, split_listen
from tests.cli.helpers import arbiter, one_line
from tests.process import ROOT, ServerProcess

DEMO_CONFIG = str(ROOT / "examples" / "experiments.toml")


def serve(*args: str, cwd: Path = ROOT) -> tuple[int, str]:
    result = arbiter("serve", *args, cwd=cwd)
    assert result.stdout == ""  # nothing was served: no ready line
    return result.returncode, one_line(result)


def sqlite(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'arbiter.db'}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_a_port_already_in_use_is_one_line_and_exit_1(tmp_path: Path) -> None:
    first = ServerProcess(Path(DEMO_CONFIG), f"sqlite:///{tmp_path / 'first.db'}")
    try:
        code, line = serve("--listen", first.target, "--db", f"sqlite:///{tmp_path / 'second.db'}",
                           "--config", DEMO_CONFIG)
    finally:
        first.stop()
    assert code == 1
    assert f"cannot listen on {first.target}" in line
    assert "already in use" in line and "--listen" in line


def test_a_missing_sqlite_folder_is_one_line_and_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "nodir"
    code, line = serve("--db", f"sqlite:///{missing / 'x.db'}", "--config", DEMO_CONFIG)
    assert code == 2
    assert f"the folder {missing} does not exist" in line and "mkdir -p" in line
    assert not missing.exists()


@pytest.mark.parametrize(("url", "expected"), [
    ("sqlit:///x.db", "did you mean sqlite:///x.db?"),
    ("x.db", "for the file x.db: sqlite:///x.db"),
    ("mysql://arbiter@db.internal/arbiter", "not 'mysql'"),
    ("postgresql+psycopg2://arbiter@db.internal/arbiter", "psycopg 3"),
])
def test_a_database_url_arbiter_cannot_use_is_one_line_and_exit_2(
        tmp_path: Path, url: str, expected: str) -> None:
    code, line = serve("--db", url, "--config", DEMO_CONFIG, cwd=tmp_path)
    assert code == 2
    assert f"--db {url!r}" in line and expected in line
    assert "sqlite:///FILE" in line or "postgresql://" in line  # what to give instead
    assert list(tmp_path.iterdir()) == []  # no file made


def test_postgresql_refusing_the_connection_is_one_line_and_exit_1() -> None:
    port = free_port()  # nothing listens there
    code, line = serve("--db", f"postgresql://arbiter:s3cret@127.0.0.1:{port}/arbiter",
                       "--config", DEMO_CONFIG)
    assert code == 1
    assert f"cannot connect to the database postgresql://arbiter:***@127.0.0.1:{port}/arbiter" in line
    assert "refused" in line.lower()
    assert "s3cret" not in line


def test_a_file_that_is_not_a_database_is_one_line_and_exit_1(tmp_path: Path) -> None:
    (tmp_path / "notes.db").write_text("not a database\n")
    code, line = serve("--db", f"sqlite:///{tmp_path / 'notes.db'}", "--config", DEMO_CONFIG)
    assert code == 1
    assert "file is not a database" in line and "check --db" in line


@pytest.mark.parametrize(("flag", "listen", "expected"), [
    ("--listen", "127.0.0.1:99999", "port 99999 is out of range; ports go from 1 to 65535"),
    ("--listen", ":70000", "port 70000 is out of range"),
    ("--listen", "localhost", "has no port: give HOST:PORT, e.g. localhost:50051"),
    ("--listen", "127.0.0.1:http", "the port must be a number"),
    ("--listen", ":50051", "has no host"),
    ("--listen", "300.1.2.3:50051", "neither an IP address nor a host name"),
    ("--listen", "::1:50051", "an IPv6 address goes in brackets, as in [::1]:50051"),
    ("--listen", "[::1]", "has no port: give [::1]:PORT"),
    ("--listen", "[::1:50051", "no closing bracket"),
    ("--listen", "[1.2.3.4]:50051", "is not an IPv6 address"),
    ("--metrics-listen", "127.0.0.1:99999", "port 99999 is out of range; ports go from 1 to 65535"),
    ("--metrics-listen", "localhost", "has no port: give HOST:PORT, e.g. localhost:9464"),
    ("--metrics-listen", "9464", "has no port"),
    ("--metrics-listen", "[::1]", "has no port: give [::1]:PORT, e.g. [::1]:9464"),
    ("--metrics-listen", "300.1.2.3:9464", "neither an IP address nor a host name"),
])
def test_a_bad_listen_address_is_one_line_and_exit_2(tmp_path: Path, flag: str, listen: str,
                                                      expected: str) -> None:
    code, line = serve(flag, listen, "--db", sqlite(tmp_path), "--config", DEMO_CONFIG)
    assert code == 2
    assert f"{flag} {listen!r}" in line and expected in line
    assert not (tmp_path / "arbiter.db").exists()


@pytest.mark.parametrize(("listen", "host", "port"), [
    ("127.0.0.1:50051", "127.0.0.1", 50051),
    ("0.0.0.0:0", "0.0.0.0", 0),
    ("localhost:1", "localhost", 1),
    ("db-1.internal.example:65535", "db-1.internal.example", 65535),
    ("[::1]:50051", "::1", 50051),
    ("[::]:0", "::", 0),
])
def test_good_listen_addresses_pass(listen: str, host: str, port: int) -> None:
    assert listen_problem(listen) is None
    assert split_listen(listen) == (host, port)


def test_serve_without_a_config_says_where_the_demo_config_is(tmp_path: Path) -> None:
    code, line = serve("--db", sqlite(tmp_path), cwd=tmp_path)  # no ./experiments.toml there
    assert code == 2
    assert "no --config given and no experiments.toml in this folder" in line
    assert "examples/experiments.toml" in line
    from_repo = arbiter("serve", "--db", sqlite(tmp_path), "--listen", "127.0.0.1:0")
    assert from_repo.returncode == 2
    assert "arbiter serve --config examples/experiments.toml" in one_line(from_repo)


def test_serve_reads_experiments_toml_from_the_working_folder_by_default(tmp_path: Path) -> None:
    (tmp_path / "experiments.toml").write_text('[experiments.home]\npolicy = "nosuch"\n')
    code, line = serve("--db", sqlite(tmp_path), "--listen", "127.0.0.1:0", cwd=tmp_path)
    assert code == 2
    assert "home" in line and "nosuch" in line  # it read ./experiments.toml


def test_export_into_a_missing_folder_is_one_line_and_exit_2(tmp_path: Path) -> None:
    db = sqlite(tmp_path)
    assert arbiter("db", "upgrade", "--db", db).returncode == 0
    out = tmp_path / "nodir" / "x.parquet"
    result = arbiter("export", "--db", db, "--experiment", "homepage", "--format", "parquet",
                     "--out", str(out))
    assert result.returncode == 2
    line = one_line(result)
    assert f"--out {out}: the folder {out.parent} does not exist" in line and "mkdir -p" in line


@pytest.mark.parametrize("command", [["export", "--format", "dsjson", "--out", "-"],
                                     ["evaluate", "--candidate", "u=uniform"]])
def test_readers_refuse_a_database_url_they_cannot_use_in_one_line(command: list[str]) -> None:
    result = arbiter(command[0], "--db", "sqlit:///x.db", "--experiment", "homepage", *command[1:])
    assert result.returncode == 2
    assert "did you mean sqlite:///x.db?" in one_line(result)


def test_db_upgrade_refuses_a_bare_path_in_one_line(tmp_path: Path) -> None:
    result = arbiter("db", "upgrade", "--db", "arbiter.db", cwd=tmp_path)
    assert result.returncode == 2
    assert "for the file arbiter.db: sqlite:///arbiter.db" in one_line(result)
    assert list(tmp_path.iterdir()) == []


def test_metrics_on_the_grpc_port_is_one_line_and_exit_2(tmp_path: Path) -> None:
    port = free_port()
    code, line = serve("--listen", f"127.0.0.1:{port}", "--metrics-listen", f"0.0.0.0:{port}",
                       "--db", sqlite(tmp_path), "--config", DEMO_CONFIG)
    assert code == 2
    assert "uses the port of --listen" in line and "give the metrics another port" in line


def test_a_metrics_port_already_in_use_is_one_line_and_exit_1(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, line = serve("--metrics-listen", f"127.0.0.1:{port}", "--listen", "127.0.0.1:0",
                           "--db", sqlite(tmp_path), "--config", DEMO_CONFIG)
    assert code == 1
    assert f"port {port} is already in use" in line and "--metrics-listen" in line
    assert not (tmp_path / "arbiter.db").exists()
