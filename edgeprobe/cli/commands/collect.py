"""`edgeprobe collect`: MQTT -> the collector database (SQLite or PostgreSQL)."""

from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer

log = logging.getLogger("edgeprobe.collector")


def register(app: typer.Typer) -> None:
    app.command("collect")(collect)


def collect(
    db: Annotated[str, typer.Option("--db", help="SQLite file to write (created if missing), or a PostgreSQL URL "
                                                 "(postgresql://user@host:port/dbname) for several collectors.")],
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
    max_message_bytes: Annotated[int, typer.Option(
        help="Quarantine any message larger than this (bytes); keep it at or under the broker's "
             "message_size_limit.")] = 512 * 1024,
    retain_raw: Annotated[str, typer.Option(
        help="Keep raw windows (messages and their rows) this long after arrival, e.g. 7d, 36h.")] = "7d",
    retain_rollups: Annotated[str, typer.Option(
        help="Keep the hourly rollups this long (fleet questions over older ranges find nothing).")] = "400d",
    client: Annotated[str, typer.Option(
        "--client", envvar="EDGEPROBE_MQTT_CLIENT",
        help="MQTT client to receive with: paho (default) or gmqtt (the gmqtt extra; its network side costs "
             "~60% of paho's CPU a message, see README Throughput).")] = "paho",
) -> None:
    """Subscribe to the fleet's messages and store them (SQLite, or PostgreSQL) until stopped."""
    from edgeprobe.cli.userinput import existing_file, host_port, output_file, sqlite_file, tcp_port
    from edgeprobe.collector.service import new_collector, require_client
    from edgeprobe.collector.store import Store
    from edgeprobe.harness.errors import ConfigError

    host, port = host_port(broker)
    require_client(client)  # before anything starts: a missing gmqtt is one sentence, exit 2
    for name, path in (("--ca-file", ca_file), ("--cert-file", cert_file), ("--key-file", key_file)):
        if path is not None:
            existing_file(path, name, "give the PEM file made by deploy/mosquitto/make-certs.sh")
    if metrics_port is not None:
        tcp_port(metrics_port, "--metrics-port")
    if ready_file is not None:
        output_file(ready_file, "--ready-file", "collector.ready")
    if max_message_bytes < 1024:
        raise ConfigError(f"--max-message-bytes {max_message_bytes} is too small for any real message; "
                          "give at least 1024 (the default is 524288)")
    from edgeprobe.collector.backend import describe, first_line, is_postgres
    from edgeprobe.collector.retention import Pruner, Retention
    from edgeprobe.collector.timerange import parse_duration

    retention = Retention(parse_duration(retain_raw, "--retain-raw"),
                          parse_duration(retain_rollups, "--retain-rollups"))
    if retention.rollups_s < retention.raw_s:
        raise ConfigError(f"--retain-rollups {retain_rollups} is shorter than --retain-raw {retain_raw}; "
                          "keep the rollups at least as long as the raw windows")
    if is_postgres(db):
        db_hint = "check the URL (postgresql://user@host:port/dbname) and that the server accepts connections"
    else:
        db_hint = "point --db at a .db file of its own (created if missing)"
        sqlite_file(Path(db), "database", db_hint)
    try:
        store = Store(db, max_message_bytes=max_message_bytes)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"cannot open database {describe(db)} ({first_line(exc)}); {db_hint}") from None
    store.close()  # the schema is in place: the store process opens its own connection
    from edgeprobe.collector.storeproc import StoreProcess

    # the store in a process of its own: the client's network thread and the store then hold a GIL each
    writer = StoreProcess(db, max_message_bytes=max_message_bytes)
    try:
        collector = new_collector(client, writer, host, port, client_id=client_id, group=group,
                                  username=username, password=password, ca_file=_s(ca_file),
                                  cert_file=_s(cert_file), key_file=_s(key_file))
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError: a file that is not PEM
        writer.close()
        raise ConfigError(f"cannot load the TLS files ({exc}); give the PEM files made by "
                          "deploy/mosquitto/make-certs.sh") from None
    if metrics_port is not None:
        from edgeprobe.collector.prometheus import serve_metrics

        try:
            serve_metrics(db, metrics_port, metrics_host, collector)
        except (OSError, OverflowError) as exc:
            writer.close()
            raise ConfigError(f"--metrics-port {metrics_port}: cannot listen on {metrics_host} ({exc}); "
                              "pick a free port") from None
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    collector.start()
    # Silence while the broker is down would look like "no messages yet": say so once, keep retrying.
    if not _wait_subscribed(collector, stop, 5.0) and not stop.is_set():
        _say_why(collector, host, port, _s(ca_file))
    if ready_file is not None:
        if _wait_subscribed(collector, stop, 25.0):
            ready_file.write_text("subscribed\n")
        elif not stop.is_set():
            _say_why(collector, host, port, _s(ca_file))
    pruner = threading.Thread(target=Pruner(db, retention).run, args=(stop,),
                              name="edgeprobe-retention", daemon=True)
    pruner.start()
    stop.wait()
    pruner.join(timeout=10)  # a pass in progress finishes its chunk (each is one small transaction)
    collector.stop()
    s = collector.stats
    log.warning("collector stopped: %d received, %d stored, %d quarantined", s.received, s.stored, s.quarantined)
    writer.close()


def _wait_subscribed(collector: Any, stop: threading.Event, timeout: float) -> bool:
    """True once subscribed; False after ``timeout`` or as soon as a stop signal arrives."""
    deadline = time.monotonic() + timeout
    while not stop.is_set() and time.monotonic() < deadline:
        if collector.subscribed.wait(timeout=0.1):
            return True
    return collector.subscribed.is_set()


def _say_why(collector: Any, host: str, port: int, ca_file: str | None) -> None:
    """One of four sentences: authentication refused, not authorised (both from the CONNACK, already
    logged by the collector), certificate not trusted, not reachable."""
    from edgeprobe.harness.broker_errors import probe

    if collector.refused:
        return
    why = probe(host, port, ca_file) or f"broker {host}:{port} accepts connections but has not let the " \
                                         "collector subscribe yet"
    log.warning("%s; still trying", why)


def _s(path: Path | None) -> str | None:
    return None if path is None else str(path)
