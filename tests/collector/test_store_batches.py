"""A batch stores exactly what its messages store one at a time, whatever is in it.

``Store.ingest`` folds a batch before any SQL: each message's timestamp is formatted once, a
device's latest health row is built only from its newest window, devices are upserted once per
batch, duplicates inside the batch are dropped. The straightforward path is one message per
batch (nothing to fold: each message is its own newest); every table must come out the same,
floats up to the order their sums were added in.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeprobe.collector.store import Incoming, Store
from edgeprobe.harness import schema
from tests.conftest import Databases

START = dt.datetime(2026, 2, 3, 9, 58, tzinfo=dt.timezone.utc)
RECEIVED = dt.datetime(2026, 2, 3, 12, 0, tzinfo=dt.timezone.utc)
FLAGS = ("dark", "blurry", "frozen", "a,b")


@st.composite
def health_message(draw: Any) -> tuple[str, bytes]:
    dev = draw(st.sampled_from(("cam-0", "cam-1", "cam-2")))
    # few distinct instants, two hours apart at most: ties for "newest" and windows in two UTC hours
    ts = START + dt.timedelta(seconds=draw(st.sampled_from((0, 30, 90, 3600, 7000))))
    span = draw(st.sampled_from((0.0, 9.5, 10.0)))
    fig = st.floats(0, 1000, allow_nan=False)
    body = {"window": {"start_ts": (ts - dt.timedelta(seconds=span)).isoformat(), "end_ts": ts.isoformat(),
                       "first_frame": 0, "last_frame": 9, "frames": draw(st.integers(0, 300))},
            "fps": draw(fig), "brightness": draw(fig), "contrast": draw(fig), "sharpness": draw(fig),
            "clipped": draw(st.floats(0, 1)), "frozen_frames": draw(st.integers(0, 5)),
            "spool_queued": draw(st.integers(0, 5)), "spool_dropped": draw(st.integers(0, 50)),
            "flags": draw(st.lists(st.sampled_from(FLAGS), max_size=3)),
            "alerts": draw(st.lists(st.sampled_from(FLAGS), max_size=2)),
            "noise": draw(st.none() | fig), "occlusion": draw(st.none() | st.floats(0, 1))}
    kind = draw(st.sampled_from(("health", "health", "health", "birth", "death")))
    if kind == "birth":
        body = {"model": {}, "source": {}, "host": {}, "capabilities": {}}
    elif kind == "death":
        body = {"reason": "stopped"}
    # one session a device: a batch counts a device's sessions by its newest birth only (the devices upsert)
    msg = schema.make_envelope(kind=kind, device_id=dev, fleet="f", session_id=f"s-{dev}",
                               seq=draw(st.integers(0, 20)), body=body, model_sha256="a" * 64,
                               config_sha256="b" * 64, ts=ts)
    return schema.topic_for("f", dev, kind), schema.encode(msg)


def dump(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows in a stable order (the quarantine's row ids aside)."""
    out = {}
    for table in ("messages", "health", "devices", "device_state", "device_kinds", "rollup_health",
                  "rollup_health_flags", "quarantine", "ingest_stats"):
        rows = [tuple(r) for r in store.db.execute(f"SELECT * FROM {table}").fetchall()]
        if table == "quarantine":
            rows = [r[1:] for r in rows]
        out[table] = sorted(rows, key=lambda r: [str(v) for v in r if not isinstance(v, float)])
    return out


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return bool(a == b)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(messages=st.lists(health_message(), min_size=1, max_size=30), repeats=st.lists(st.integers(0, 29)))
def test_one_batch_stores_what_one_message_at_a_time_stores(databases: Databases, messages: list[tuple[str, bytes]],
                                                            repeats: list[int]) -> None:
    # redeliveries, inside the batch and (one at a time) after the first copy is stored
    items = messages + [messages[i % len(messages)] for i in repeats]
    batch = [Incoming(topic, payload, RECEIVED + dt.timedelta(milliseconds=i % 3))
             for i, (topic, payload) in enumerate(items)]
    together = Store(databases.fresh())
    together.ingest(batch)
    want = dump(together)
    together.close()
    apart = Store(databases.fresh())
    for item in batch:
        apart.ingest([item])
    got = dump(apart)
    apart.close()
    for table, rows in want.items():
        assert len(got[table]) == len(rows), table
        for r1, r2 in zip(rows, got[table], strict=True):
            assert len(r1) == len(r2) and all(same(x, y) for x, y in zip(r1, r2, strict=True)), (table, r1, r2)
