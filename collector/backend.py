"""Where the collector's database lives: one interface, a SQLite file or a PostgreSQL server.

Everything above this module (the store, rollups, tables, queries, retention, metrics) writes one
dialect: the common subset of SQLite and PostgreSQL (``ON CONFLICT ... DO UPDATE``, CASE instead of
two-argument MAX/GREATEST, ``?`` placeholders, portable DDL types). What differs lives here and in
collector/postgres.py: how a connection is opened, how a write transaction takes its locks, how a
batch learns which of its messages are new, and the few DDL spellings (an identity key, BLOB).

``--db`` picks the backend: ``postgresql://`` or ``postgres://`` URLs go to PostgreSQL (psycopg 3,
the ``postgres`` extra, imported only then), anything else is a SQLite file.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import sqlite_utils

#: (device_id, msg_id): a message's key
Key = tuple[str, str]
#: SQLite's largest rowid, past which new rows get random free rowids (SqliteBackend.insert_new)
_MAX_ROWID = 2**63 - 1


class Backend(Protocol):
    """The store's connection: ``?`` SQL in, rows out, write transactions, the dialect's few differences."""

    kind: str
    #: errors that mean the database itself failed (nothing could be stored): the batch is retried, not quarantined
    fatal: tuple[type[BaseException], ...]
    #: errors after which the same transaction simply runs again (PostgreSQL: a deadlock between collectors)
    retryable: tuple[type[BaseException], ...]
    #: what queries read through (``execute(sql, params)``); SQLite: a sqlite-utils Database, for datasette-style use
    db: Any

    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Any: ...

    def executemany(self, sql: str, seq: Iterable[Sequence[Any]], /) -> Any: ...

    def write(self) -> contextlib.AbstractContextManager[None]: ...

    def schema(self) -> contextlib.AbstractContextManager[None]: ...

    def insert_new(self, sql: str, rows: list[tuple[Any, ...]], keys: list[Key]) -> set[Key]: ...

    def lock_rows(self, sql: str) -> str: ...

    def create_view(self, name: str, select: str) -> None: ...

    def columns(self, table: str) -> set[str]: ...

    def tables(self) -> set[str]: ...

    def close(self) -> None: ...


def is_postgres(db: str | Path) -> bool:
    return str(db).startswith(("postgresql://", "postgres://"))


def connect(db: str | Path, readonly: bool = False) -> Backend:
    """The backend for ``--db``: a PostgreSQL URL or a SQLite path (created if missing unless ``readonly``)."""
    if is_postgres(db):
        try:
            from edgeprobe.collector.postgres import PostgresBackend
        except ImportError as exc:
            from edgeprobe.harness.errors import ConfigError

            raise ConfigError(f"--db {describe(db)} is PostgreSQL, which needs psycopg 3 ({exc}); install it with "
                              "pip install 'edgeprobe[postgres]'") from None
        return PostgresBackend(str(db), readonly=readonly)
    return SqliteBackend(str(db), readonly=readonly)


def describe(db: str | Path) -> str:
    """``db`` as it may be printed: a PostgreSQL URL without its password."""
    if not is_postgres(db):
        return str(db)
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(str(db))
    if parts.password is None:
        return str(db)
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def first_line(exc: BaseException) -> str:
    """A driver's error as one line (psycopg's connection errors span several)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def open_existing(db: str | Path, hint: str) -> Backend:
    """A read-only connection to a collector database that must already exist; one sentence if it cannot be."""
    from edgeprobe.harness.errors import ConfigError

    if not is_postgres(db):
        path = Path(db)
        if path.is_dir():
            raise ConfigError(f"database {db} is a folder; {hint}")
        if not path.is_file():
            raise ConfigError(f"database {db} does not exist; {hint}")
    try:
        conn = connect(db, readonly=True)
        found = conn.tables()
    except ConfigError:
        raise
    except Exception as exc:
        what = "cannot connect to" if is_postgres(db) else "cannot read"
        raise ConfigError(f"{what} database {describe(db)} ({first_line(exc)}); {hint}") from None
    if "devices" not in found or "messages" not in found:
        conn.close()
        raise ConfigError(f"{describe(db)} is not an edgeprobe collector database (no devices table); {hint}")
    return conn


class SqliteBackend:
    """One SQLite file; a writer takes the file's write lock for the whole batch (BEGIN IMMEDIATE)."""

    kind = "sqlite"
    fatal: tuple[type[BaseException], ...] = (sqlite3.OperationalError,)
    retryable: tuple[type[BaseException], ...] = ()

    def __init__(self, path: str, readonly: bool = False):
        if readonly:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30, check_same_thread=False)
        else:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            # The collector opens the store in one thread and writes from another; one thread at a time uses it.
            # timeout: several collectors (a shared subscription group) write to one file and queue for the lock
            conn = sqlite3.connect(path, check_same_thread=False, timeout=60)
            conn.execute("PRAGMA busy_timeout=60000")
            # WAL, synchronous=FULL: every commit fsyncs the log before it returns, and the collector
            # acknowledges a batch to the broker only after that, so an acked message is on disk even
            # through a power cut. NORMAL would skip that fsync (synced only at checkpoints): the file
            # stays consistent and a killed collector loses nothing (the OS holds the write), but a power
            # cut could drop the last commits whose messages were already acked and so deleted at the
            # broker -- lost for good, not redelivered. FULL costs one fsync per batch (hundreds of
            # messages), a few us per message; measured in benchmarks/ingest.py.
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
        self.conn = conn
        self.db = sqlite_utils.Database(conn)
        # the hot path calls these per statement: the connection's own methods, no wrapper in between
        self.execute = conn.execute
        self.executemany = conn.executemany

    @contextlib.contextmanager
    def write(self) -> Iterator[None]:
        with self.conn:
            # Take the write lock before reading which ids are new, so two collectors
            # cannot both decide a redelivered msg_id is theirs to store.
            self.conn.execute("BEGIN IMMEDIATE")
            yield

    @contextlib.contextmanager
    def schema(self) -> Iterator[None]:
        yield
        self.conn.commit()

    def insert_new(self, sql: str, rows: list[tuple[Any, ...]], keys: list[Key]) -> set[Key]:
        """Insert the rows whose key is not stored yet; the keys inserted (under the write lock ``write`` holds).

        ``ON CONFLICT DO NOTHING`` skips what is stored already, and its row count says whether
        anything was skipped: almost always nothing, and then every key is new with no lookup at
        all. Otherwise the new rows are the ones past the table's largest rowid before the insert
        (SQLite gives a new row the largest rowid plus one, under this transaction's lock, unless
        the largest is already the largest integer, where it picks free ones at random: then each
        key is looked up by the primary key first).
        """
        if not rows:
            return set()
        conn = self.conn
        (before,) = conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM messages").fetchone()
        if before >= _MAX_ROWID:
            stored = {key for key in keys if conn.execute(
                "SELECT 1 FROM messages WHERE device_id = ? AND msg_id = ?", key).fetchone()}
            new = [(row, key) for row, key in zip(rows, keys, strict=True) if key not in stored]
            conn.executemany(sql, [row for row, _ in new])
            return {key for _, key in new}
        inserted = conn.executemany(sql + " ON CONFLICT DO NOTHING", rows).rowcount
        if inserted == len(rows):
            return set(keys)
        return {(d, m) for d, m in conn.execute("SELECT device_id, msg_id FROM messages WHERE rowid > ?",
                                                (before,))}

    def lock_rows(self, sql: str) -> str:
        return sql  # the transaction already holds the whole file's write lock

    def create_view(self, name: str, select: str) -> None:
        self.conn.execute(f"DROP VIEW IF EXISTS {name}")  # replaced: its definition may have changed
        self.conn.execute(f"CREATE VIEW {name} AS {select}")

    def columns(self, table: str) -> set[str]:
        return {r[1] for r in self.conn.execute(f"PRAGMA table_info({table})")}

    def tables(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

    def close(self) -> None:
        self.conn.close()
