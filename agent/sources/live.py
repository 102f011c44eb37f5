"""Live cameras and streams: latest-frame grabbing, bounded waits, reconnects.

A grabber thread reads the camera as fast as it delivers and keeps only the
newest frame, so a model slower than the camera sees fresh frames (older ones
are counted as dropped) instead of a backlog that grows without end. The
consumer never waits longer than ``read_timeout_s``: a silent camera becomes an
outage (an event, an ``offline`` state) and the grabber reconnects with
jittered exponential backoff while the agent keeps reporting.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import cv2
import numpy as np

from edgeprobe.agent.sources.backoff import Backoff
from edgeprobe.agent.sources.base import Frame
from edgeprobe.agent.sources.diagnose import diagnose_url
from edgeprobe.agent.sources.redact import redact
from edgeprobe.harness.errors import SourceError

log = logging.getLogger("edgeprobe.agent.sources")

EventSink = Callable[[dict[str, Any]], object]

#: how often the consumer hands control back (``on_idle``) while no frame comes
IDLE_TICK_S = 0.5


def has_gstreamer() -> bool:
    return "GStreamer:                   YES" in cv2.getBuildInformation()


def _utc(ns_wall: int) -> str:
    return dt.datetime.fromtimestamp(ns_wall / 1e9, dt.timezone.utc).isoformat()


class LiveSource:
    """A camera index, /dev/video path, GStreamer pipeline, or RTSP/HTTP URL."""

    def __init__(self, uri: str, kind: str, open_timeout_s: float = 5.0, read_timeout_s: float = 5.0,
                 backoff_initial_s: float = 0.5, backoff_max_s: float = 30.0, fail_fast: bool = False,
                 on_event: EventSink | None = None):
        self.uri = uri
        self.kind = kind  # "device" | "gstreamer" | "url"
        self.safe_uri = redact(uri)
        self.source_id = self.safe_uri
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self.fail_fast = fail_fast
        self.on_event: EventSink | None = on_event
        #: called by the consumer while no frame arrives; returning True ends the iteration
        self.on_idle: Callable[[], bool] | None = None
        self._backoff = Backoff(backoff_initial_s, backoff_max_s)
        self._cond = threading.Condition()
        self._closed = threading.Event()
        self._latest: tuple[np.ndarray, int, int] | None = None  # image, t_capture_ns, decode_ns
        self._fatal: str | None = None
        self._generation = 0
        self._read_started_ns: int | None = None
        self.frames_received = 0
        self.dropped = 0  # frames overwritten before the consumer took them
        self.outages = 0
        self.width = self.height = 0
        self.fps = 0.0
        self._offline_since: tuple[int, int] | None = None  # (perf ns, wall ns) of the outage's start
        self._last_frame_ns: int | None = None
        self._last_frame_wall_ns: int | None = None
        self.last_error = ""
        if kind == "gstreamer" and not has_gstreamer():
            raise SourceError(
                "this OpenCV build has no GStreamer (the pip opencv-python-headless wheel never has it), so the "
                "pipeline in source.uri cannot run; install OpenCV with GStreamer (e.g. Debian/JetPack python3-opencv) "
                "or use a device index, /dev/video path or RTSP/HTTP URL")
        first = self._open()
        if first is None:
            if fail_fast:
                raise SourceError(self.last_error)
            log.warning("%s; retrying with backoff (set source.fail_fast to stop instead)", self.last_error)
            self._begin_outage(self.last_error)
        self._thread = self._start_grabber(first)

    # --- opening ------------------------------------------------------------

    def _open(self) -> cv2.VideoCapture | None:
        """One bounded attempt; on failure ``last_error`` holds the sentence."""
        ms = int(self.open_timeout_s * 1000)
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.read_timeout_s * 1000)]
        if self.kind == "device":
            index: int | str = int(self.uri) if self.uri.isdigit() else self.uri
            cap = cv2.VideoCapture(index, cv2.CAP_V4L2, params)
        elif self.kind == "gstreamer":
            cap = cv2.VideoCapture(self.uri, cv2.CAP_GSTREAMER)
        else:
            cap = cv2.VideoCapture(self.uri, cv2.CAP_FFMPEG, params)
        if cap.isOpened():
            self.width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
            self.height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
            self.fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
            return cap
        cap.release()
        if self.kind == "device":
            self.last_error = (f"camera {self.uri} does not exist or cannot be opened (no such V4L2 device, or no "
                               "permission); check `ls /dev/video*` and that the agent's user is in the video group")
        elif self.kind == "gstreamer":
            self.last_error = ("the GStreamer pipeline in source.uri did not start (it does not parse or an element is "
                               "missing); test it with gst-launch-1.0 and end it with '! appsink'")
        else:
            self.last_error = diagnose_url(self.uri, self.open_timeout_s)
        return None

    # --- the grabber ----------------------------------------------------------

    def _start_grabber(self, cap: cv2.VideoCapture | None) -> threading.Thread:
        with self._cond:
            self._generation += 1
            gen = self._generation
        thread = threading.Thread(target=self._grab, args=(cap, gen), name=f"grab-{gen}", daemon=True)
        thread.start()
        return thread

    def _grab(self, cap: cv2.VideoCapture | None, gen: int) -> None:
        try:
            while not self._closed.is_set() and gen == self._generation:
                if cap is None:
                    # An open can hang as a read can (GStreamer's rtspsrc has no open timeout OpenCV
                    # passes on, and blocks for good on a server that accepts but never plays): the
                    # consumer's watchdog gives up on this grabber the same way.
                    self._read_started_ns = time.perf_counter_ns()
                    cap = self._open()
                    self._read_started_ns = None
                    if gen != self._generation:
                        break
                    if cap is None:
                        if self.fail_fast:
                            self._set_fatal(self.last_error)
                            return
                        self._closed.wait(self._backoff.next_delay())
                        continue
                self._read_started_ns = time.perf_counter_ns()
                t0 = time.perf_counter_ns()
                ok, image = cap.read()
                t1 = time.perf_counter_ns()
                self._read_started_ns = None
                if gen != self._generation:
                    break  # this grabber was given up on while it hung; a newer one owns the camera
                if not ok or image is None:
                    cap.release()
                    cap = None
                    self._begin_outage(f"{self.safe_uri} stopped delivering frames")
                    if self.fail_fast:
                        self._set_fatal(f"{self.safe_uri} stopped delivering frames and source.fail_fast is set")
                        return
                    continue
                self._deliver(image, t1, t1 - t0)
        finally:
            if cap is not None:
                cap.release()

    def _deliver(self, image: np.ndarray, t_ns: int, decode_ns: int) -> None:
        h, w = image.shape[:2]
        if (w, h) != (self.width, self.height) and self.frames_received:
            self._emit({"type": "source_resolution_changed", "source": self.safe_uri,
                        "message": f"{self.safe_uri} changed resolution from {self.width}x{self.height} to {w}x{h}; "
                                   "frames are resized to the model's input as before",
                        "old": [self.width, self.height], "new": [w, h]})
        self.width, self.height = w, h
        with self._cond:
            if self._latest is not None:
                self.dropped += 1
            self._latest = (image, t_ns, decode_ns)
            self.frames_received += 1
            self._last_frame_ns, self._last_frame_wall_ns = t_ns, time.time_ns()
            self._cond.notify_all()
        self._end_outage()
        self._backoff.reset()

    def _set_fatal(self, message: str) -> None:
        with self._cond:
            self._fatal = message
            self._cond.notify_all()

    # --- outages --------------------------------------------------------------

    def _begin_outage(self, reason: str) -> None:
        with self._cond:
            if self._offline_since is not None:
                return
            # the outage began when the last frame arrived (or now, if none ever did)
            start = (time.perf_counter_ns(), time.time_ns())
            if self._last_frame_ns is not None and self._last_frame_wall_ns is not None:
                start = (self._last_frame_ns, self._last_frame_wall_ns)
            self._offline_since = start
            self.outages += 1
        detected_after = (time.perf_counter_ns() - start[0]) / 1e9
        log.warning("camera offline: %s", redact(reason))
        self._emit({"type": "source_offline", "source": self.safe_uri, "message": redact(reason),
                    "start_ts": _utc(start[1]), "detected_after_s": round(detected_after, 3)})

    def _end_outage(self) -> None:
        with self._cond:
            since = self._offline_since
            if since is None:
                return
            self._offline_since = None
        end_ns, end_wall = time.perf_counter_ns(), time.time_ns()
        length = (end_ns - since[0]) / 1e9
        log.warning("camera back after %.1f s: %s", length, self.safe_uri)
        self._emit({"type": "source_outage", "source": self.safe_uri,
                    "message": f"{self.safe_uri} was offline for {length:.1f} s",
                    "start_ts": _utc(since[1]), "end_ts": _utc(end_wall), "duration_s": round(length, 3)})

    def _emit(self, event: dict[str, Any]) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(event)
        except Exception:  # a broken sink must not kill the grabber
            log.exception("event sink failed for %s", event.get("type"))

    @property
    def offline(self) -> bool:
        return self._offline_since is not None

    def status(self) -> dict[str, Any]:
        """For the health message: dropped frames, outages, and whether the camera is offline now."""
        offline_s = 0.0
        since = self._offline_since
        if since is not None:
            offline_s = (time.perf_counter_ns() - since[0]) / 1e9
        return {"source_dropped": self.dropped, "source_frames": self.frames_received, "source_outages": self.outages,
                "source_offline": since is not None, "source_offline_s": round(offline_s, 3)}

    # --- the consumer ---------------------------------------------------------

    def _watchdog(self) -> None:
        """A read the backend did not bound: declare the outage, and give up on a grabber that hangs."""
        now = time.perf_counter_ns()
        last = self._last_frame_ns
        if last is not None and now - last > self.read_timeout_s * 1e9:
            self._begin_outage(f"{self.safe_uri} sent no frame for {self.read_timeout_s:.1f} s")
        started = self._read_started_ns
        if started is not None and now - started > (self.read_timeout_s + self.open_timeout_s) * 1e9:
            log.warning("opening or reading %s hung; starting a new grabber", self.safe_uri)
            self._read_started_ns = None
            self._thread = self._start_grabber(None)

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        while not self._closed.is_set():
            with self._cond:
                if self._latest is None and self._fatal is None:
                    self._cond.wait(IDLE_TICK_S)
                item, self._latest = self._latest, None
                fatal = self._fatal
            if fatal is not None:
                raise SourceError(fatal)
            if item is None:
                self._watchdog()
                if self.on_idle is not None and self.on_idle():
                    return
                continue
            image, t_ns, decode_ns = item
            yield Frame(image=image, t_capture_ns=t_ns, index=index, source_id=self.source_id, decode_ns=decode_ns)
            index += 1

    def close(self) -> None:
        self._closed.set()
        with self._cond:
            self._generation += 1
            self._cond.notify_all()
        self._thread.join(timeout=self.read_timeout_s + 1)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "uri": self.safe_uri, "width": self.width, "height": self.height, "fps": self.fps,
                "open_timeout_s": self.open_timeout_s, "read_timeout_s": self.read_timeout_s,
                "fail_fast": self.fail_fast}
