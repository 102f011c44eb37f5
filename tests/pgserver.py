"""A real PostgreSQL server for the tests: Debian's binaries, a throwaway cluster, a private port.

One server per test session (initdb and start-up take a few seconds; a database per test is
~0.1 s). The cluster lives in a fresh folder under the system temp dir, listens on 127.0.0.1 at
a free port with its unix socket in that folder, trusts local connections (nothing else can
reach it), and skips durability (fsync off: a test cluster is thrown away). It is stopped by
the PID of the ``postgres`` process this module started, with a fast shutdown, then SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgeprobe.cli.localbroker import free_port

SUPERUSER = "edgeprobe"


def find_bin_dir() -> Path | None:
    """Debian's ``/usr/lib/postgresql/<version>/bin`` (15 first, then the newest), or wherever initdb is on PATH."""
    root = Path("/usr/lib/postgresql")
    found = sorted((p for p in root.glob("*/bin") if (p / "initdb").is_file() and (p / "postgres").is_file()),
                   key=lambda p: (p.parent.name != "15", -int(p.parent.name) if p.parent.name.isdigit() else 0))
    if found:
        return found[0]
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and (Path(initdb).parent / "postgres").is_file() else None


def _run_as() -> dict[str, Any]:
    """Popen arguments that drop root: postgres refuses to run as root ("root execution of the PostgreSQL
    server is not permitted"), and CI and `make test` run as root. ``nobody`` exists on every Debian
    machine, needs no user to be created (nothing left behind), and owns nothing else we could harm; the
    cluster folder is made and chowned for it. As a normal user, the server simply runs as that user."""
    if os.geteuid() != 0:
        return {}
    nobody = pwd.getpwnam("nobody")
    return {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}


class PostgresServer:
    def __init__(self, bin_dir: Path, durable: bool = False):
        """``durable``: fsync and synchronous commit on, as a collector's server must run (benchmarks); tests
        leave them off, since their cluster is thrown away."""
        self.bin_dir, self.durable = bin_dir, durable
        self.port = free_port()
        # not under pytest's tmp_path: that folder is 0700 root's, which `nobody` cannot enter
        self.root = Path(tempfile.mkdtemp(prefix="edgeprobe-pg-"))
        self.data = self.root / "data"
        self.proc: subprocess.Popen[bytes] | None = None
        self._n = 0

    @property
    def admin_url(self) -> str:
        return self.url("postgres")

    def url(self, dbname: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def start(self) -> None:
        drop = _run_as()
        if drop:
            os.chown(self.root, drop["user"], drop["group"])
        env = {**os.environ, "LC_ALL": "C", "LANG": "C", "TZ": "UTC"}
        init = subprocess.run(
            [str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
             "--locale=C", "--no-sync"], capture_output=True, env=env, timeout=120, **drop)
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed: {init.stderr.decode(errors='replace')[-2000:]}")
        log = open(self.root / "postgres.log", "ab")  # noqa: SIM115 - the server keeps it
        self.proc = subprocess.Popen(
            [str(self.bin_dir / "postgres"), "-D", str(self.data), "-p", str(self.port), "-h", "127.0.0.1",
             "-k", str(self.root), *(() if self.durable else ("-c", "fsync=off", "-c", "synchronous_commit=off",
                                                               "-c", "full_page_writes=off")),
             "-c", "max_connections=60", "-c", "shared_buffers=128MB" if self.durable else "shared_buffers=32MB"],
            stdout=log, stderr=log, env=env, **drop)
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited: {(self.root / 'postgres.log').read_text()[-2000:]}")
            if self._accepts():
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("postgres did not accept connections within 60 s")

    def _accepts(self) -> bool:
        import psycopg

        try:
            psycopg.connect(self.admin_url, connect_timeout=2).close()
        except psycopg.OperationalError:
            return False
        return True

    def create_database(self) -> str:
        """A new, empty database; its URL."""
        import psycopg

        self._n += 1
        name = f"t{os.getpid()}_{self._n}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE template0")
        return self.url(name)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown: roll back sessions, stop
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)


def truncate_all(url: str) -> None:
    """Empty every table of the database (much cheaper than a new database and schema per hypothesis example)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        names = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()").fetchall()]
        if names:
            conn.execute(f"TRUNCATE {', '.join(names)} RESTART IDENTITY CASCADE")


@contextlib.contextmanager
def running_server(durable: bool = False) -> Iterator[PostgresServer | str]:
    """The server, or a sentence saying why there is none (the tests skip with it)."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        yield ("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): `make postgres` installs "
               "Debian's postgresql as root")
        return
    try:
        import psycopg  # noqa: F401
    except ImportError:
        yield "psycopg is not installed: pip install -e '.[postgres]'"
        return
    server = PostgresServer(bin_dir, durable=durable)
    try:
        server.start()
        yield server
    finally:
        server.stop()
