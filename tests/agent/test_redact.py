"""No camera password reaches a log line, an event, a birth, the spool or the collector database.

The property test generates credentials with the characters that broke the
old redaction (``/``, ``@``, ``:``, percent-escapes) in every URL form a
camera uses (user-info, query tokens), embedded the way the agent's messages
embed them. The end-to-end test runs the real agent on a real MJPEG server
with such a URL and looks for the password in everything it wrote.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeprobe.agent.config import load_config
from edgeprobe.agent.runner import Agent
from edgeprobe.agent.sources.redact import redact, split_credentials
from edgeprobe.agent.spool import Spool
from edgeprobe.collector.store import Incoming, Store
from tests.conftest import demo_config
from tests.streams.helpers import free_port, start_mjpeg, stop

# printable, no whitespace or quotes (they end a URL in any text); "/", "@", ":", "%", "?", "&", "=" included
CHARS = st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters="\"'<>`\\ ")
SECRET = st.text(CHARS, min_size=6, max_size=24).filter(lambda s: "***" not in s)
HOST = st.sampled_from(["10.0.0.7", "cam.example.lan", "127.0.0.1:8554", "[fe80::1]:554"])


def _forms(user: str, password: str, host: str) -> list[str]:
    enc = quote(password, safe="")
    return [
        f"rtsp://{user}:{password}@{host}/stream1",
        f"rtsp://{user}:{enc}@{host}/stream1",
        f"http://{user}:{password}@{host}/video.mjpg?res=hd",
        f"rtsps://{user}:{password}@{host}",
        f"http://{host}/video.mjpg?token={enc}&res=hd",
        f"http://{host}/video.mjpg?res=hd&access_token={enc}",
        f"http://{host}/cgi?user={quote(user, safe='')}&pwd={enc}",
    ]


def _leaks(text: str, *secrets: str) -> list[str]:
    return [s for s in secrets for form in {s, unquote(s), quote(s, safe="")} if len(form) >= 4 and form in text]


@given(user=SECRET, password=SECRET, host=HOST, wrap=st.sampled_from(["{}", "cannot open {} now", "'{}'",
                                                                       '{{"uri": "{}"}}', "({})", "{}: 401"]))
def test_no_form_of_a_url_leaks_its_password(user: str, password: str, host: str, wrap: str) -> None:
    for url in _forms(user, password, host):
        out = redact(wrap.format(url))
        assert not _leaks(out, password), (url, out)
        if "?" not in url:  # user-info form: the user goes too, and the host stays readable
            assert not _leaks(out.split("@")[0], user) and host in out, (url, out)


@given(user=SECRET.filter(lambda s: ":" not in s), password=SECRET, host=HOST)
def test_split_credentials_finds_the_real_host(user: str, password: str, host: str) -> None:
    bare, u, p = split_credentials(f"rtsp://{user}:{password}@{host}/s")
    assert (bare, u, p) == (f"rtsp://{host}/s", user, password)


def test_urls_without_secrets_are_kept() -> None:
    for url in ("rtsp://10.0.0.7/stream1", "http://cam/video.mjpg?res=hd&fps=5", "/dev/video0", "clip.mp4"):
        assert redact(url) == url


@pytest.mark.parametrize("password", ["pa/ssW0rd", "p@ss@w0rd", "a:b/c@d%2F", "h%40rd:er/2"])
def test_the_agent_writes_no_password_anywhere(tmp_path: Path, orientation_model: Path, vtest_video: Path,
                                               write_config: Any, password: str,
                                               caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    token = "tok3n/With@Odd%2F"
    spool = tmp_path / "spool.db"
    cfg = demo_config(orientation_model, Path("x"), spool, windows={"frames": 10, "warmup": 2, "seconds": 1.0})
    cfg["source"] = {"uri": f"http://admin:{password}@127.0.0.1:{port}/video?token={quote(token, safe='')}",
                     "read_timeout_s": 1.0, "open_timeout_s": 1.0, "backoff_initial_s": 0.1, "backoff_max_s": 0.3}
    server = start_mjpeg(vtest_video, port, "--fps", "25")
    stop(server)  # a camera that went away: the agent reports it offline, with its URL, again and again
    agent = Agent(load_config(write_config(cfg)))
    done = threading.Event()
    caplog.set_level(logging.DEBUG)
    runner = threading.Thread(target=lambda: agent.run(stop=done))
    runner.start()
    time.sleep(3.0)  # several reconnect attempts, offline events and a health window
    done.set()
    runner.join(timeout=30)
    rows = Spool(spool).peek(10_000)
    kinds = {r.topic.rsplit("/", 1)[1] for r in rows}
    assert {"birth", "event"} <= kinds, kinds
    store = Store(tmp_path / "fleet.db")
    store.ingest([Incoming(r.topic, r.payload, __import__("datetime").datetime.now(
        __import__("datetime").timezone.utc)) for r in rows])
    store.close()
    written = {
        "log": caplog.text,
        "spool": b"".join(r.payload for r in rows).decode(errors="replace"),
        "spool file": spool.read_bytes().decode(errors="replace"),
        "collector db": (tmp_path / "fleet.db").read_bytes().decode(errors="replace"),
    }
    births = [json.loads(r.payload) for r in rows if r.topic.endswith("/birth")]
    assert "***" in births[0]["body"]["source"]["uri"]
    for where, text in written.items():
        assert not _leaks(text, password, token), f"{where} holds the password"
