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
    ca_file: Annotated[Path | None, typer.Option(help="CA certificate of the broker: connect over TLS.")] = None,
    cert_file: Annotated[Path | None, typer.Option(help="Client certificate, if the broker requires one.")] = None,
    key_file: Annotated[Path | None, typer.Option(help="Client key for --cert-file.")] = None,
    metrics_port: Annotated[int | None, typer.Option(
        help="Serve the fleet's figures in Prometheus text format on this port (/metrics).")] = None,
    metrics_host: Annotated[str, typer.Option(help="Address for --metrics-port.")] = "127.0.0.1",
) -> None:
    """Subscribe to the fleet's messages and store them in SQLite until stopped."""
    from ..collector.service import Collector
    from ..collector.store import Store
    from ..harness.errors import ConfigError

    host, _, port = broker.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--broker {broker!r} must be HOST:PORT, e.g. 127.0.0.1:1883")
    for name, path in (("--ca-file", ca_file), ("--cert-file", cert_file), ("--key-file", key_file)):
        if path is not None and not path.is_file():
            raise ConfigError(f"{name} {path} does not exist; give the PEM file made by deploy/mosquitto/make-certs.sh")
    try:
        store = Store(db)
    except Exception as exc:
        raise ConfigError(f"cannot open database {db}: {exc}") from None
    collector = Collector(store, host, int(port), client_id=client_id, group=group,
                          username=username, password=password, ca_file=_s(ca_file), cert_file=_s(cert_file),
                          key_file=_s(key_file))
    if metrics_port is not None:
        from ..collector.prometheus import serve_metrics

        try:
            serve_metrics(db, metrics_port, metrics_host)
        except OSError as exc:
            raise ConfigError(f"--metrics-port {metrics_port}: cannot listen on {metrics_host} ({exc}); "
                              "pick a free port") from None
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


def _s(path: Path | None) -> str | None:
    return None if path is None else str(path)
