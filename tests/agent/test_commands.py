"""Commands to a device: parsing, dispatch and replies (unit), and a real agent answering over MQTT (e2e)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeprobe.agent.commands import CommandError, Commands
from edgeprobe.agent.messages import Messenger
from edgeprobe.agent.spool import Spool
from edgeprobe.cli.localbroker import LocalBroker
from edgeprobe.harness import schema
from tests.conftest import REPO, demo_config
from tests.e2e.util import client, count, start_collector, stop, wait_for


def _commands(tmp_path: Path) -> tuple[Commands, Spool]:
    spool = Spool(tmp_path / "spool.db")
    cmds = Commands(Messenger(spool, "cam-1", "f", "a" * 64, "b" * 64))
    state = {"n": 10}

    def duty(args: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(args.get("n"), int):
            raise CommandError("need args.n")
        state["n"] = args["n"]
        return {"n": state["n"]}

    cmds.register("duty", duty)
    cmds.register("boom", lambda args: 1 / 0)  # type: ignore[arg-type,return-value]
    return cmds, spool


def _replies(spool: Spool) -> list[dict[str, Any]]:
    out = []
    for row in spool.peek(1000):
        env, _ = schema.decode_message(row.payload, row.topic)
        assert env.kind == "event"
        out.append(env.body)
    return out


def test_known_unknown_malformed_and_failing_commands_each_get_one_reply(tmp_path: Path) -> None:
    cmds, spool = _commands(tmp_path)
    for payload in (b'{"id": "a", "command": "duty", "args": {"n": 3}}', b'{"id": "b", "command": "nope"}',
                    b'{"id": "c", "command": "duty", "args": {"n": "x"}}', b'{"id": "d", "command": "boom"}',
                    b"{not json", b'{"id": "e", "command": 5}', b'{"id": "f", "command": "duty", "extra": 1}'):
        cmds.submit("t", payload)
    assert cmds.poll() == 7
    replies = _replies(spool)
    assert [(r["command_id"], r["status"]) for r in replies] == [
        ("a", "ok"), ("b", "error"), ("c", "error"), ("d", "error"), (None, "error"), ("e", "error"),
        ("f", "error")]
    assert replies[0]["result"] == {"n": 3}
    assert "unknown command 'nope'" in replies[1]["message"] and "duty" in replies[1]["message"]
    assert replies[2]["message"] == "need args.n"
    assert "ZeroDivisionError" in replies[3]["message"]
    assert replies[4]["message"].startswith("malformed command")


@settings(max_examples=60, deadline=None)
@given(payload=st.one_of(st.binary(max_size=200), st.dictionaries(st.text(max_size=8), st.text(max_size=8)).map(
    lambda d: json.dumps(d).encode())))
def test_any_payload_gets_exactly_one_valid_reply_event(tmp_path_factory: pytest.TempPathFactory,
                                                        payload: bytes) -> None:
    cmds, spool = _commands(tmp_path_factory.mktemp("cmd"))
    cmds.submit("t", payload)
    assert cmds.poll() == 1
    assert len(_replies(spool)) == 1


@contextmanager
def live_agent(broker: LocalBroker, cfg: Path, tmp_path: Path) -> Iterator[tuple[Path, Any, subprocess.Popen[bytes]]]:
    """A real collector and `edgeprobe run` on the broker, and an operator client once the agent reports."""
    db = tmp_path / "fleet.db"
    collector = start_collector(db, broker.address, tmp_path)
    agent = subprocess.Popen([sys.executable, "-m", "edgeprobe", "run", "--config", str(cfg)], cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    op, _ = client(broker.port, client_id="operator")
    try:
        assert wait_for(lambda: count(db, "SELECT COUNT(*) FROM messages WHERE kind = 'latency'") >= 1, timeout=60)
        op.connect("127.0.0.1", broker.port)
        op.loop_start()
        yield db, op, agent
    finally:
        op.loop_stop()
        stop(agent)
        stop(collector)


def test_real_agent_answers_commands_over_mqtt(broker: LocalBroker, tmp_path: Path, orientation_model: Path,
                                               short_clip: Path, write_config: Callable[[dict[str, Any]], Path]
                                               ) -> None:
    cfg = write_config(demo_config(orientation_model, short_clip, tmp_path / "spool.db",
                                   broker={"enabled": True, "host": "127.0.0.1", "port": broker.port}))
    with live_agent(broker, cfg, tmp_path) as (db, op, agent):
        topic = "edgeprobe/v1/test/test-cam/cmd"
        sent = {"1": {"command": "set_duty_cycle", "args": {"every_n_frames": 2}}, "2": {"command": "snapshot"},
                "3": {"command": "rebirth"}, "4": {"command": "run_check"}, "5": {"command": "fly"}}
        for cid, cmd in sent.items():
            op.publish(topic, json.dumps({"id": cid, **cmd}).encode(), qos=1).wait_for_publish(10)
        op.publish(topic, b"\x00garbage", qos=1).wait_for_publish(10)
        sql = "SELECT COUNT(*) FROM messages WHERE kind = 'event' AND body LIKE '%command_%'"
        assert wait_for(lambda: count(db, sql) >= 6, timeout=60)
        import sqlite3

        with sqlite3.connect(db) as conn:
            bodies = [json.loads(b) for (b,) in conn.execute(
                "SELECT body FROM messages WHERE kind = 'event' AND body LIKE '%command_%'")]
        by_id = {b["command_id"]: b for b in bodies}
        assert by_id["1"]["status"] == "ok" and by_id["1"]["result"] == {"every_n_frames": 2, "was": 5}
        assert by_id["2"]["status"] == "ok" and by_id["2"]["result"]["jpeg_base64"]
        assert by_id["3"]["status"] == "ok"
        assert by_id["4"]["status"] == "error" and "no suite configured" in by_id["4"]["message"]
        assert by_id["5"]["status"] == "error"
        assert by_id[None]["message"].startswith("malformed command")
        assert count(db, "SELECT COUNT(*) FROM messages WHERE kind = 'birth'") >= 2  # the rebirth
        assert agent.poll() is None, "a command took the agent down"


def test_run_check_runs_the_configured_suite_and_publishes_its_verdict(
        broker: LocalBroker, tmp_path: Path, orientation_model: Path, short_clip: Path,
        write_config: Callable[[dict[str, Any]], Path]) -> None:
    """An operator's run_check makes a live agent run its acceptance suite; verdict and reply reach the collector."""
    from tests.cli.test_check import FAILING, PASSING, small_suite, write_suite

    suite = write_suite(tmp_path / "suite.yaml", small_suite(orientation_model, short_clip, [*PASSING, FAILING[0]]))
    cfg = write_config({**demo_config(orientation_model, short_clip, tmp_path / "spool.db",
                                      broker={"enabled": True, "host": "127.0.0.1", "port": broker.port}),
                        "suite": str(suite)})
    with live_agent(broker, cfg, tmp_path) as (db, op, agent):
        op.publish("edgeprobe/v1/test/test-cam/cmd", json.dumps({"id": "chk", "command": "run_check"}).encode(),
                   qos=1).wait_for_publish(10)
        assert wait_for(lambda: count(db, "SELECT COUNT(*) FROM messages WHERE kind = 'verdict'") >= 1, timeout=120)
        sql = "SELECT COUNT(*) FROM messages WHERE kind = 'event' AND body LIKE '%\"chk\"%'"
        assert wait_for(lambda: count(db, sql) >= 1, timeout=30)
        import sqlite3

        with sqlite3.connect(db) as conn:
            (verdict,) = [json.loads(b) for (b,) in conn.execute("SELECT body FROM messages WHERE kind = 'verdict'")]
            (reply,) = [json.loads(b) for (b,) in conn.execute(
                "SELECT body FROM messages WHERE kind = 'event' AND body LIKE '%\"chk\"%'")]
        # The impossible inference budget fails the suite; every check is in the verdict with its figure.
        assert verdict["status"] == "fail" and verdict["suite"] == "cli-test"
        assert len(verdict["checks"]) == len(PASSING) + 1
        assert [c["status"] for c in verdict["checks"]][-1] == "fail"
        assert reply["status"] == "ok" and reply["result"]["status"] == "fail" and reply["result"]["exit_code"] == 1
        assert agent.poll() is None, "running the suite took the agent down"
        # Monitoring resumes after the check: more latency windows arrive.
        n = count(db, "SELECT COUNT(*) FROM messages WHERE kind = 'latency'")
        assert wait_for(lambda: count(db, "SELECT COUNT(*) FROM messages WHERE kind = 'latency'") > n, timeout=60)


def test_a_broken_suite_in_the_agent_config_stops_it_at_start(tmp_path: Path, orientation_model: Path,
                                                              short_clip: Path,
                                                              write_config: Callable[[dict[str, Any]], Path]) -> None:
    cfg = write_config({**demo_config(orientation_model, short_clip, tmp_path / "spool.db"),
                        "suite": str(tmp_path / "missing.yaml")})
    proc = subprocess.run([sys.executable, "-m", "edgeprobe", "run", "--config", str(cfg)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "suite:" in proc.stderr and "missing.yaml does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr
