"""The structures maintained at ingest say exactly what the raw rows say, however batches arrive.

Rollups are checked against the raw tables they summarise (recomputed here the slow way), with
batches shuffled, split and redelivered; latest-state rows against the newest window by the
device's own timestamp; time ranges through the CLI, including bad input.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import threading
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.fleet_synth import stream
from edgeprobe.collector import queries
from edgeprobe.collector.store import Store
from edgeprobe.collector.timerange import TimeRange
from edgeprobe.harness.latency import histogram_summary, merge_histograms
from edgeprobe.harness.rollup_form import summary_of_packed
from tests.conftest import Databases, assert_clean_error, run_cli
from tests.pgserver import PostgresServer

START = dt.datetime(2026, 1, 5, 10, 40, tzinfo=dt.timezone.utc)


def assert_rollups_match_raw(db: Any) -> None:
    """``db``: a store's reader (SQLite or PostgreSQL)."""
    raw = {}
    for dev, ts, stage, hdr in db.execute("SELECT device_id, ts, stage, hdr FROM latency"):
        hour = int(dt.datetime.fromisoformat(ts).timestamp()) // 3600 * 3600
        raw.setdefault((dev, hour, stage), []).append(hdr)
    rolled = {(d, h, s): (w, hist) for d, h, s, w, hist in
              db.execute("SELECT device_id, hour, stage, windows, hist FROM rollup_latency")}
    assert set(raw) == set(rolled) and raw
    for key, hdrs in raw.items():
        windows, hist = rolled[key]
        assert windows == len(hdrs)
        exact = histogram_summary(merge_histograms(hdrs))
        exact.pop("mean")
        assert summary_of_packed([hist]) == exact
    rob = {}
    for dev, ts, pert, sev, n, unstable in db.execute(
            "SELECT device_id, ts, perturbation, severity, n, unstable FROM robustness"):
        key = (dev, int(dt.datetime.fromisoformat(ts).timestamp()) // 3600 * 3600, pert, sev)
        a = rob.setdefault(key, [0, 0])
        a[0] += n
        a[1] += unstable
    assert rob == {(d, h, p, s): [n, u] for d, h, p, s, n, u in db.execute(
        "SELECT device_id, hour, perturbation, severity, n, unstable FROM rollup_robustness")}
    frames = {}
    for dev, ts, f in db.execute("SELECT device_id, ts, frames FROM health"):
        key = (dev, int(dt.datetime.fromisoformat(ts).timestamp()) // 3600 * 3600)
        frames[key] = frames.get(key, 0) + f
    assert frames == {(d, h): f for d, h, f in db.execute("SELECT device_id, hour, frames FROM rollup_health")}
    # latest state: the newest window by the device's timestamp, whatever order the batches came in
    newest = {d: ts for d, ts in db.execute("SELECT device_id, MAX(ts) FROM health GROUP BY device_id")}
    for dev, hts in db.execute("SELECT device_id, health_ts FROM device_state WHERE health_ts IS NOT NULL"):
        assert abs(hts - dt.datetime.fromisoformat(newest[dev]).timestamp()) < 1e-6
    missing = dict(db.execute("SELECT device_id, missing FROM device_seq"))
    for dev, m in db.execute("SELECT device_id, seq_max - seq_min + 1 - seq_received FROM device_state"):
        assert missing[dev] == m


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), batch=st.integers(4, 40), redeliver=st.floats(0, 0.5),
       drop=st.floats(0, 0.2))
def test_rollups_match_the_raw_rows_for_any_batching(databases: Databases, seed: int, batch: int, redeliver: float,
                                                     drop: float) -> None:
    rng = random.Random(seed)
    msgs = [m for tick in stream(2, START, hours=1.5, every_s=900, seed=seed) for m in tick]
    births, rest = msgs[:2], msgs[2:]
    rest = [m for m in rest if rng.random() >= drop]  # lost messages: seq gaps
    rng.shuffle(rest)  # out of order, as several collectors and redeliveries make it
    rest += rng.sample(rest, int(len(rest) * redeliver))  # redeliveries
    store = Store(databases.fresh())
    store.ingest(births)
    for i in range(0, len(rest), batch):
        store.ingest(rest[i:i + batch])
    assert_rollups_match_raw(store.db)
    store.close()


def test_questions_over_a_range_see_only_its_hours(databases: Databases) -> None:
    db_url = databases.fresh()
    store = Store(db_url)
    for tick in stream(2, START, hours=3, every_s=900):
        store.ingest(tick)
    db = store.db
    every = {r["stage"]: r["count"] for r in queries.latency_summary(db, "cam-0000")}
    since = START + dt.timedelta(hours=2)
    late = {r["stage"]: r["count"] for r in queries.latency_summary(db, "cam-0000", TimeRange.of(since.timestamp()))}
    assert 0 < late["e2e"] < every["e2e"]
    # 10:40 + 2 h = 12:40 -> whole hours from 12:00: the windows at 12:10 .. 13:40
    hours = {r[0] for r in db.execute("SELECT hour FROM rollup_latency WHERE hour >= ?",
                                      [int(since.timestamp()) // 3600 * 3600]).fetchall()}
    assert len(hours) == 2
    status = {r["device_id"]: r for r in queries.fleet_status(db, tr=TimeRange.of(since.timestamp()))}
    assert status["cam-0000"]["latency_samples"] == late["e2e"]
    nothing = queries.fleet_status(db, tr=TimeRange.of((START + dt.timedelta(days=1)).timestamp()))
    assert {r["latency_samples"] for r in nothing} == {0} and all(r["worst_perturbation"] is None for r in nothing)
    store.close()
    r = run_cli("fleet", "status", "--db", db_url, "--json", "--since", "2026-01-05T12:40:00Z",
                "--until", "2026-01-05T14:00:00+00:00")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["range"] == {"from": "2026-01-05T12:00:00+00:00", "to": "2026-01-05T14:00:00+00:00"}
    assert {d["latency_samples"] for d in out["devices"]} == {late["e2e"]}
    # the summary reads the same rollups on either backend
    r = run_cli("summary", "--db", db_url, "--json", "--device", "cam-0000")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert {x["stage"]: x["count"] for x in summary["latency"]} == every
    assert summary["kinds"]["latency"] == 2 * 12 and summary["quarantined"] == 0


def test_bad_time_ranges_are_one_sentence(tmp_path: Path) -> None:
    Store(tmp_path / "f.db").close()
    for args, word in ((["--since", "yesterday"], "--since"), (["--since", "0h"], "--since"),
                       (["--since", "2026-01-05T12:00:00"], "UTC offset"),
                       (["--since", "1h", "--until", "2h"], "before")):
        r = run_cli("fleet", "status", "--db", str(tmp_path / "f.db"), *args)
        assert_clean_error(r, word)


def test_two_writers_on_one_postgresql_fold_every_message_once(postgres: PostgresServer) -> None:
    """Two stores (two collectors) ingest one stream at once, in batches of their own, some messages handed to
    both: each is stored once, and the hours' histograms, which both read, merge and write back, hold
    every window exactly once (no lost update on a new hour, no double count of a message both saw)."""
    url = postgres.create_database()
    msgs = [m for tick in stream(8, START, hours=8, every_s=1800, seed=3) for m in tick]
    stores = [Store(url), Store(url)]
    stores[0].ingest(msgs[:8])  # births
    rest = msgs[8:]
    # each gets every other message in time order (both open the same new hours at once), and every fifth
    # message of the other's share too, as a redelivery would hand it over
    plans = [sorted(rest[i::2] + rest[1 - i::10], key=rest.index) for i in range(2)]

    def run(i: int) -> None:
        for j in range(0, len(plans[i]), 4):
            stores[i].ingest(plans[i][j:j + 4])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads)
    assert stores[0].counts()["messages"] == len(msgs)
    assert_rollups_match_raw(stores[0].db)
    for s in stores:
        s.close()
