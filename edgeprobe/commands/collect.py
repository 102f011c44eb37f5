"""`edgeprobe collect`: MQTT -> SQLite."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

log = logging.getLogger("edgeprobe.collector")


def register(app: typer.Typer) -> None:
    app.command("collect")(collect)


def collect(
    db: Annotated[Path, typer.Option("--db", help="SQLite file to write (created if missing).")],
    broker: Annotated[str, typer.Option(help="Broker as HOST:PORT.")] = "127.0.0.1:1883",
    client_id: Annotated[str, typer.Option(help="MQTT client id (persistent session).")] = "edgeprobe-collector",
    group: Annotated[str | None, typer.Option(help="Shared-subscription group, to run N collectors.")] = None,
    username: Annotated[str | None, typer.Option(envvar="EDGEPROBE_MQTT_USERNAME")] = None,
    password: Annotated[str | None, typer.Option(envvar="EDGEPROBE_MQTT_PASSWORD")] = None,
    ready_file: Annotated[Path | None, typer.Option(help="Touch this file once subscribed.")] = None,
) -> None:
    """Subscribe to the fleet's messages and store them in SQLite until stopped."""
    from ..collector.service import Collector
    from ..collector.store import Store
    from ..harness.errors import ConfigError

    host, _, port = broker.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--broker {broker!r} must be HOST:PORT, e.g. 127.0.0.1:1883")
    try:
        store = Store(db)
    except Exception as exc:
        raise ConfigError(f"cannot open database {db}: {exc}") from None
    collector = Collector(store, host, int(port), client_id=client_id, group=group,
                          username=username, password=password)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    collector.start()
    if ready_file is not None:
        if collector.subscribed.wait(timeout=30):
            ready_file.write_text("subscribed\n")
        else:
            log.warning("not subscribed after 30 s; is the broker at %s running?", broker)
    stop.wait()
    collector.stop()
    s = collector.stats
    log.warning("collector stopped: %d received, %d stored, %d quarantined", s.received, s.stored, s.quarantined)
    store.close()
