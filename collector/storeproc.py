"""The store in a child process of its own, so the network thread and the store each hold a GIL.

In one process the collector's two threads take turns on one interpreter lock: paho's network thread
needs ~60 us of it a message, ``Store.ingest`` most of its ~75 (decode, rows, binding each row to
SQLite, which releases and retakes the lock for every row it steps), so one collector got about one
core's worth however many were free. Apart, paired rounds against the one-process collector stored
at x1.37 the rate (benchmarks/ingest_ab.py; README "Throughput"). With the store here the parent's
writer thread only hands each batch over (one pickled list down a pipe) and waits for ``(stored,
quarantined)``, acknowledging the batch to the broker after that answer, which comes after the
commit: the durability rule (ack only what is on disk) is unchanged.

``StoreProcess.ingest`` keeps ``Store.ingest``'s contract: it returns (stored, quarantined), and
raises when the database itself failed (the collector retries the batch, unacknowledged). A child
that died (killed, out of memory) is started again: seen dead before a batch, the new child takes
the batch; dying under one, the batch raises, so it is retried rather than lost.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import pickle
import signal
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

from edgeprobe.collector.store import Incoming

log = logging.getLogger("edgeprobe.collector")

#: how long close() waits for the child to finish its last batch and exit
CLOSE_TIMEOUT_S = 30.0


class StoreFailed(RuntimeError):
    """The child's Store.ingest raised (the database failed), or the child itself died."""


def _serve(conn: Connection, db: str, store_args: dict[str, Any], log_level: int) -> None:
    """The child: open the store, then ingest each batch that arrives until the pipe closes."""
    # Ctrl-C and the service manager's SIGTERM reach the whole process group: the parent drains its
    # queue, then closes the pipe, which is when this child stops (mid-batch it would lose the batch)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=log_level, format="%(levelname)s %(name)s: %(message)s")  # as edgeprobe's CLI
    from edgeprobe.collector.store import Store

    store = Store(db, **store_args)
    try:
        while True:
            try:
                data = conn.recv_bytes()
            except EOFError:
                return
            if not data:  # close()'s stop sign
                return
            try:
                reply: tuple[Any, ...] = ("ok", *store.ingest([Incoming(*item) for item in pickle.loads(data)]))
            except Exception as exc:
                reply = ("error", f"{type(exc).__name__}: {exc}")
            conn.send_bytes(pickle.dumps(reply))
    finally:
        store.close()


class StoreProcess:
    """``Store.ingest`` run in a child process (``spawn``: no thread of the parent's is copied into it)."""

    def __init__(self, db: str, **store_args: Any):
        self.db, self.store_args = db, store_args
        self._ctx = mp.get_context("spawn")
        self._proc: Any = None
        self._conn: Connection | None = None
        self._start()

    def _start(self) -> None:
        parent, child = self._ctx.Pipe()
        self._proc = self._ctx.Process(target=_serve, name="edgeprobe-collector-store", daemon=True,
                                       args=(child, self.db, self.store_args, logging.getLogger().level))
        self._proc.start()
        child.close()
        self._conn = parent

    @property
    def pid(self) -> int | None:
        """The child's process id (None between a death and the restart)."""
        return None if self._proc is None else int(self._proc.pid)

    def ingest(self, batch: Sequence[Incoming]) -> tuple[int, int]:
        """Validate and store a batch in the child; (stored, quarantined), or StoreFailed if nothing was."""
        if self._conn is None or self._proc is None or not self._proc.is_alive():
            self._restart("the store process had exited")
        assert self._conn is not None
        try:
            # plain tuples: a NamedTuple pickles by reference to its class, slower to load
            self._conn.send_bytes(pickle.dumps([tuple(item) for item in batch], protocol=pickle.HIGHEST_PROTOCOL))
            reply = pickle.loads(self._conn.recv_bytes())
        except (EOFError, OSError) as exc:
            self._restart(f"the store process died ({type(exc).__name__})")
            raise StoreFailed("the store process died during the batch; it was started again") from None
        if reply[0] != "ok":
            raise StoreFailed(reply[1])
        return int(reply[1]), int(reply[2])

    def _restart(self, why: str) -> None:
        log.warning("%s; starting it again", why)
        self._stop_child(timeout=1.0)
        self._start()

    def _stop_child(self, timeout: float) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError):  # a dead child: nothing to tell
                self._conn.send_bytes(b"")
            self._conn.close()
            self._conn = None
        if self._proc is not None:
            self._proc.join(timeout)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(timeout)
            self._proc = None

    def close(self) -> None:
        """Let the child finish and exit (after the collector has stored and acknowledged its last batch)."""
        self._stop_child(CLOSE_TIMEOUT_S)
