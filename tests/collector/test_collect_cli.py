"""Bad input to `edgeprobe collect`: one sentence, exit 2, no traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from tests.conftest import assert_clean_error, run_cli
from tests.pgserver import PostgresServer


def test_missing_ca_file(tmp_path: Path) -> None:
    r = run_cli("collect", "--db", str(tmp_path / "f.db"), "--ca-file", str(tmp_path / "nope.crt"), timeout=60)
    assert r.returncode == 2 and "--ca-file" in r.stderr and "Traceback" not in r.stderr


def test_metrics_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = run_cli("collect", "--db", str(tmp_path / "f.db"), "--broker", "127.0.0.1:1",
                    "--metrics-port", str(port), timeout=60)
    assert r.returncode == 2 and "--metrics-port" in r.stderr and "Traceback" not in r.stderr


def test_an_unreachable_postgresql_is_one_sentence_with_the_password_hidden() -> None:
    from edgeprobe.cli.localbroker import free_port

    url = f"postgresql://edgeprobe:s3cret@127.0.0.1:{free_port()}/fleet"  # nothing listens there
    for args in (("collect", "--db", url, "--broker", "127.0.0.1:1"), ("fleet", "status", "--db", url),
                 ("summary", "--db", url)):
        r = run_cli(*args, timeout=60)
        assert_clean_error(r, r"cannot (open|connect to) database postgresql://edgeprobe:\*\*\*@127\.0\.0\.1")
        assert "s3cret" not in r.stderr


def test_a_postgresql_database_that_is_not_the_collectors_is_named(postgres: PostgresServer) -> None:
    url = postgres.create_database()  # empty: nothing edgeprobe wrote
    r = run_cli("fleet", "status", "--db", url, timeout=60)
    assert_clean_error(r, "is not an edgeprobe collector database")


def test_the_sqlite_path_never_imports_psycopg(tmp_path: Path) -> None:
    """PostgreSQL is an optional install: storing into SQLite, querying it and the agent load no psycopg."""
    code = ("import sys, datetime as dt\n"
            "from edgeprobe.collector.store import Store\n"
            "from edgeprobe.collector import queries, prometheus, retention, service\n"
            "import edgeprobe.agent.runner\n"
            f"s = Store({str(tmp_path / 'f.db')!r}); queries.fleet_status(s.db); s.close()\n"
            "assert not [m for m in sys.modules if m.split('.')[0] in ('psycopg', 'psycopg_binary')], 'psycopg'\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_gmqtt_asked_for_and_not_installed_is_one_sentence(tmp_path: Path) -> None:
    """gmqtt is an optional extra: without it, `--client gmqtt` says so and how to install it, exit 2."""
    hide = ("import sys; sys.modules['gmqtt'] = None; from edgeprobe.cli import main; "
            f"sys.argv = ['edgeprobe', 'collect', '--db', {str(tmp_path / 'f.db')!r}, '--client', 'gmqtt']; main()")
    r = subprocess.run([sys.executable, "-c", hide], capture_output=True, text=True, timeout=60)
    assert_clean_error(r, r"--client gmqtt needs the gmqtt package.*pip install 'edgeprobe\[gmqtt\]'")
    assert not (tmp_path / "f.db").exists()  # refused before anything was started


def test_an_unknown_client_is_one_sentence(tmp_path: Path) -> None:
    r = run_cli("collect", "--db", str(tmp_path / "f.db"), "--client", "mosquitto_sub", timeout=60)
    assert_clean_error(r, r"--client 'mosquitto_sub' is not a client the collector has; give one of paho, gmqtt")
