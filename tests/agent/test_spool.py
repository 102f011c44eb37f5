from __future__ import annotations

import threading
from pathlib import Path

from edgeprobe.agent.spool import Spool


def test_fifo_peek_skips_inflight_and_delete(tmp_path: Path) -> None:
    s = Spool(tmp_path / "s.db")
    for i in range(5):
        s.put("t", f"m{i}".encode())
    rows = s.peek(3)
    assert [r.payload for r in rows] == [b"m0", b"m1", b"m2"]
    assert [r.payload for r in s.peek(2, exclude={rows[0].id})] == [b"m1", b"m2"]
    s.delete([rows[0].id, rows[1].id])
    assert s.pending() == 3


def test_bounded_by_rows_drops_oldest_and_counts(tmp_path: Path) -> None:
    s = Spool(tmp_path / "s.db", max_rows=10)
    for i in range(25):
        s.put("t", str(i).encode())
    assert s.pending() == 10
    assert s.dropped() == 15
    assert s.peek(1)[0].payload == b"15"


def test_bounded_by_bytes(tmp_path: Path) -> None:
    s = Spool(tmp_path / "s.db", max_bytes=1000)
    for _ in range(10):
        s.put("t", b"x" * 300)
    assert s.pending() == 3 and s.dropped() == 7


def test_seq_survives_reopen_and_is_unique_across_threads(tmp_path: Path) -> None:
    s = Spool(tmp_path / "s.db")
    seen: list[int] = []
    lock = threading.Lock()

    def take() -> None:
        for _ in range(50):
            v = s.next_seq()
            with lock:
                seen.append(v)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(seen) == list(range(200))
    s.close()
    assert Spool(tmp_path / "s.db").next_seq() == 200


def test_messages_survive_a_reopen(tmp_path: Path) -> None:
    Spool(tmp_path / "s.db").put("t", b"kept")
    assert [r.payload for r in Spool(tmp_path / "s.db").peek(5)] == [b"kept"]


def test_acked_rows_are_held_back_not_pending_and_come_back_on_requeue(tmp_path: Path) -> None:
    s = Spool(tmp_path / "s.db")
    for i in range(4):
        s.put("t", f"m{i}".encode())
    first_two = [r.id for r in s.peek(2)]
    s.mark_acked(first_two)
    assert s.pending() == 2 and s.held() == 2
    assert [r.payload for r in s.peek(10)] == [b"m2", b"m3"]  # never sent twice while connected
    assert s.requeue_acked() == 2
    assert [r.payload for r in s.peek(10)] == [b"m0", b"m1", b"m2", b"m3"] and s.held() == 0


def test_bounds_drop_acked_rows_first_and_do_not_count_them(tmp_path: Path) -> None:
    s = Spool(tmp_path / "s.db", max_rows=5)
    for i in range(5):
        s.put("t", str(i).encode())
    s.mark_acked([r.id for r in s.peek(3)])
    for i in range(5, 8):
        s.put("t", str(i).encode())  # three over: the three acked rows make room
    assert s.dropped() == 0 and s.held() == 0
    assert [r.payload for r in s.peek(10)] == [b"3", b"4", b"5", b"6", b"7"]
    s.put("t", b"8")  # now an unsent row has to go, and that is a drop
    assert s.dropped() == 1 and s.peek(1)[0].payload == b"4"


def test_a_spool_written_before_acked_rows_were_kept_opens_with_its_rows(tmp_path: Path) -> None:
    import sqlite3

    old = sqlite3.connect(tmp_path / "old.db")
    old.executescript("CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, "
                      "payload BLOB NOT NULL, qos INTEGER NOT NULL DEFAULT 1, retain INTEGER NOT NULL DEFAULT 0);"
                      "INSERT INTO outbox (topic, payload) VALUES ('t', x'6f6c64');")
    old.commit()
    old.close()
    s = Spool(tmp_path / "old.db")
    assert [r.payload for r in s.peek(5)] == [b"old"] and s.pending() == 1 and s.held() == 0
