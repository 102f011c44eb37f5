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
