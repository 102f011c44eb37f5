"""Monitoring over time, as the agent's loop sees it: one object fed every frame.

It ties the harness pieces together: camera health with its bands and
alerts, frozen/replayed stream detection, temporal flips, output and input
drift against a reference (a recorded baseline file, or the run's first
frames), slices by input-statistic bucket and worst-frame exemplars. The
runner calls :meth:`Monitor.observe` per frame, :meth:`probed` with each
probe's result (a value: agent/prober.py), and asks for the window's message fields.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from edgeprobe.agent.config import MonitorConfig, require_source
from edgeprobe.agent.prober import ProbeResult
from edgeprobe.harness import perturbations, schema
from edgeprobe.harness.alerts import HealthAlerts, make_bands
from edgeprobe.harness.baseline import Baseline, Recorder
from edgeprobe.harness.drift import DriftError, Row, Table, Thresholds, compare, describe_output
from edgeprobe.harness.errors import ConfigError
from edgeprobe.harness.exemplars import Exemplars
from edgeprobe.harness.health import METRICS, FrameStats, HealthWindow, health_flags, thumbnail
from edgeprobe.harness.replay import ReplayDetector
from edgeprobe.harness.slices import SliceTable
from edgeprobe.harness.temporal import FlipCounter


def load_baseline(path: str | Path, model_sha256: str | None = None) -> Baseline:
    """Read a baseline file, refusing one recorded with another model; one ConfigError sentence otherwise."""
    path = Path(path)
    hint = f"record one with `edgeprobe baseline record -c agent.yaml -o {path}`"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"baseline file {path} does not exist; {hint}") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ConfigError(f"cannot read baseline file {path} ({reason}); {hint}") from None
    try:
        baseline = Baseline.from_dict(data)
    except DriftError as exc:
        raise ConfigError(f"baseline file {path} is not usable: {exc}; {hint}") from None
    if model_sha256 and baseline.model_sha256 != model_sha256:
        raise ConfigError(
            f"baseline {path} was recorded with model sha256 {baseline.model_sha256[:12]}... but this agent runs "
            f"{model_sha256[:12]}...; record a new baseline for this model with `edgeprobe baseline record`")
    return baseline


def local_hour(wall_s: float) -> float:
    t = time.localtime(wall_s)
    return t.tm_hour + t.tm_min / 60.0


def make_row(stats: FrameStats, adapter: Any, prediction: Any, wall_s: float) -> Row:
    classes, label, values, vector = describe_output(adapter, prediction)
    return Row(tuple(float(getattr(stats, m)) for m in METRICS), classes, label, values, vector, local_hour(wall_s))


class Monitor:
    def __init__(self, cfg: MonitorConfig, device_id: str, adapter: Any, model_sha256: str, probe_seed: int = 0,
                 baseline: Baseline | None = None):
        self.cfg = cfg
        self.adapter = adapter
        self.device_id = device_id
        self.probe_seed = probe_seed
        if baseline is None and cfg.enabled and cfg.baseline:
            baseline = load_baseline(cfg.baseline, model_sha256)
        self.health = HealthWindow()
        h = cfg.health
        #: statistics on one frame in N; the replay detector sees the sampled frames, so its ring and lags are
        #: in samples (a lag of k samples is k * N frames: a multiple of the loop's length, the length itself
        #: when N divides it); buffer and confirming run stay about the configured number of frames
        self.every = h.every_n_frames
        min_run = h.replay_min_run if self.every == 1 else max(3, -(-h.replay_min_run // self.every))
        self.replay = ReplayDetector(max(3, -(-h.replay_buffer_frames // self.every)), min_run)
        self._seen = 0
        #: the thumbnail and prediction of the frame just before the next sampled one, made as that frame
        #: goes by, so each sampled frame is compared with its real predecessor without keeping any frame
        #: (the source may decode the next one into the same buffer)
        self._prev_thumb: np.ndarray | None = None
        self._prev_prediction: Any = None
        self.alerts = HealthAlerts(device_id, None, h.window_frames, h.check_every, h.frozen_share)
        self.flips = FlipCounter(adapter.disagreement, float(adapter.threshold), cfg.temporal.max_frame_diff)
        self.run_flips = [0, 0]  # flips, counted pairs over the run
        self.rows: deque[Row] = deque(maxlen=cfg.drift.window_frames)
        self.slices = SliceTable()
        self.run_slices = SliceTable()
        self.exemplars = Exemplars(cfg.exemplars.keep)
        self.reference: Table | None = None
        self.reference_source: str | None = None
        self.learner: Recorder | None = Recorder() if baseline is None and h.learn_frames > 0 else None
        if baseline is not None:
            self._set_reference(baseline.table, "baseline")
        self.replaying_frames = 0
        self.replay_lag: int | None = None
        self.last_health: dict[str, Any] = {}
        self.drift_state = "none"
        self.last_drift: dict[str, Any] | None = None
        self.events_sent: dict[str, int] = {}
        self._keys: list[tuple[str, int]] = []
        d = cfg.drift
        self.thresholds = Thresholds(d.psi_threshold, d.ks_threshold, d.mean_shift_threshold, d.input_psi_threshold,
                                     d.input_ks_threshold, d.input_outside_band)

    def _set_reference(self, table: Table, source: str) -> None:
        self.reference, self.reference_source = table, source
        self.alerts.set_bands(make_bands(table.inputs, self.cfg.health.band_margin, source))
        self.slices.set_reference(table)
        self.run_slices.edges = self.slices.edges

    # --- per frame -------------------------------------------------------------------------------

    def observe(self, image: np.ndarray | None, prediction: Any, t_capture_ns: int) -> list[dict[str, Any]]:
        """Feed one frame and the deployed model's answer; returns `event` bodies to send now.

        Only one frame in ``monitor.health.every_n_frames`` costs pixel work: the others are counted (fps)
        and remembered as the next sampled frame's predecessor.
        """
        seen = self._seen
        self._seen = seen + 1
        every = self.every
        sampling = every > 1
        if seen % every or image is None:  # (the SDK keeps no pixels of other frames)
            self.health.tick(t_capture_ns)
            if sampling and image is not None and (seen + 1) % every == 0:  # the next frame is sampled
                self._prev_thumb, self._prev_prediction = thumbnail(image), prediction
            elif self._prev_thumb is not None or self._prev_prediction is not None:
                self._prev_thumb = self._prev_prediction = None
            return []
        previous_thumb = self._prev_thumb if sampling else None
        previous_prediction = self._prev_prediction if sampling else None
        self._prev_thumb = self._prev_prediction = None
        stats = self.health.add(image, t_capture_ns, previous_thumb)
        if not self.cfg.enabled:
            return []
        wall = time.time()
        assert self.health.thumb is not None
        state = self.replay.add(self.health.thumb, stats.motion == 0.0)
        lag = state.lag * self.every if state.lag is not None else None
        if state.replaying:
            self.replaying_frames += self.every
            self.replay_lag = lag
        events = self.alerts.add(stats, wall, state.replaying, lag) if self.cfg.health.alerts else []
        if prediction is not None:  # (an app may hand the SDK its frames without outputs: health only)
            self._outputs(stats, prediction, previous_prediction, wall)
        for e in events:
            self.events_sent[e["type"]] = self.events_sent.get(e["type"], 0) + 1
        return events

    def _outputs(self, stats: FrameStats, prediction: Any, previous_prediction: Any, wall: float) -> None:
        """A sampled frame's prediction: its drift row, the learned reference, slices and temporal flips."""
        row = make_row(stats, self.adapter, prediction, wall)
        if self.learner is not None:
            self.learner.add(row)
            if self.learner.frames >= self.cfg.health.learn_frames:
                self._set_reference(self.learner.build("").table, "learned")
                self.learner = None
        self.rows.append(row)
        if self.cfg.slices.enabled:
            self._keys = self.slices.keys(row.inputs, row.hour)
            self.slices.add_frame(self._keys, row.label, row.values.get("score"))
        if self.cfg.temporal.enabled:
            flipped = self.flips.add(prediction, stats.motion, previous_prediction)
            if flipped is not None and self.cfg.slices.enabled:
                self.slices.add_pair(self._keys, flipped)

    @property
    def slice_keys(self) -> list[tuple[str, int]]:
        """The slices the last sampled frame fell in: attach them to a probe so its result lands there."""
        return self._keys

    def probed(self, result: ProbeResult) -> None:
        """Attribute a probed frame's result to its slices and offer it as an exemplar."""
        if not self.cfg.enabled or not result.cells:
            return
        def perturb(name: str) -> Callable[[np.ndarray, float, int], np.ndarray]:
            return lambda img, s, sd: perturbations.apply(name, img, s, sd)

        unstable = 0
        for c in result.cells:
            unstable += c.disagreement > self.adapter.threshold
            if self.exemplars.qualifies(c.disagreement, c.severity, result.frame_index):
                self.exemplars.offer(result.frame_index, result.view, c.perturbation, c.severity, c.seed,
                                     min(1.0, c.disagreement), perturb(c.perturbation))
        keys = result.context if result.context is not None else self._keys
        if self.cfg.slices.enabled:
            self.slices.add_probe(keys, len(result.cells), unstable)

    # --- per window ------------------------------------------------------------------------------

    def health_body(self, window: schema.Window, status: dict[str, Any], flags: list[str]) -> schema.HealthBody:
        """The window's ``health`` body: camera statistics, bands and alerts, plus the caller's ``status``
        (spool, memory, source state: HealthBody's fields) and ``flags`` (e.g. the source is offline)."""
        h = self.health.summary()
        extra, monitor_flags = self.health_fields(h)
        # A window whose frames came without pixels (the SDK's process behind, every_n_frames longer than the
        # window) has no statistics: its zeros must not read as a dark, blurry camera.
        flags = (health_flags(h) if self.health.sampled else ["not_sampled"]) + flags
        return schema.HealthBody(window=window, fps=h["fps"], brightness=h["brightness"], contrast=h["contrast"],
                                 sharpness=h["sharpness"], clipped=h["clipped"], frozen_frames=int(h["frozen_frames"]),
                                 flags=flags + [f for f in monitor_flags if f not in flags], **status, **extra)

    @staticmethod
    def idle_health_body(status: dict[str, Any], flags: list[str]) -> schema.HealthBody:
        """A ``health`` body for a stretch with no frames (a live camera is down): zeros and the reason."""
        now = schema.utc_now()
        return schema.HealthBody(window=schema.Window(start_ts=now, end_ts=now, first_frame=0, last_frame=0,
                                                      frames=0),
                                 fps=0.0, brightness=0.0, contrast=0.0, sharpness=0.0, clipped=0.0, frozen_frames=0,
                                 flags=flags, **status)

    def health_fields(self, summary: dict[str, float | int]) -> tuple[dict[str, Any], list[str]]:
        """Optional `health` fields and extra flags for the window just ended."""
        fields: dict[str, Any] = {"noise": float(summary.get("noise", 0.0)),
                                  "occlusion": min(1.0, float(summary.get("occlusion", 0.0)))}
        self.last_health = {k: summary[k] for k in ("brightness", "contrast", "sharpness", "clipped", "frames",
                                                    "frozen_frames") if k in summary}
        self.last_health.update(fields)
        if not self.cfg.enabled:
            return fields, []
        fields["replaying_frames"] = self.replaying_frames
        if self.replay_lag is not None and self.replaying_frames:
            fields["replay_lag"] = self.replay_lag
        fields.update(self.alerts.summary())
        flags = list(fields["alerts"])
        if self.replaying_frames and "replayed" not in flags:
            flags.append("replayed")
        return fields, flags

    def fresh_exemplars(self) -> list[schema.Exemplar] | None:
        """Exemplars that entered the run's top list since the last window (each is sent once), for its
        ``robustness`` body; None when none did."""
        return [msgspec.convert(e, schema.Exemplar) for e in self.exemplars.take_fresh()] or None

    def drift_body(self, window: schema.Window) -> tuple[schema.DriftBody, list[dict[str, Any]]]:
        """The `drift` message body for this window, and events when the drift verdict changed."""
        body = schema.DriftBody(window=window, reference=self.reference_source)
        events: list[dict[str, Any]] = []
        if self.cfg.temporal.enabled:
            body.temporal = msgspec.convert(self.flips.summary(), schema.TemporalStats)
        if self.cfg.drift.enabled and self.reference is not None and len(self.rows) >= self.cfg.drift.min_frames:
            result = compare(self.reference, Table.from_rows(list(self.rows)), self.thresholds)
            for key, value in result.items():  # compare() gives DriftBody's figure fields
                setattr(body, key, value)
            body.thresholds = {"psi": self.thresholds.psi, "ks": self.thresholds.ks,
                               "mean_shift": self.thresholds.mean_shift, "input_psi": self.thresholds.input_psi,
                               "input_ks": self.thresholds.input_ks,
                               "input_outside_band": self.thresholds.input_outside}
            self.last_drift = {k: v for k, v in msgspec.to_builtins(body).items() if k != "window"}
            state = result["attribution"]
            if state != self.drift_state:
                if state != "none":
                    events.append({"type": "output_drift", "device": self.device_id, "attribution": state,
                                   "message": f"{self.device_id}: {result['message']}",
                                   "drifted": result["drifted"], "inputs_moved": result["inputs_moved"],
                                   "reference": self.reference_source})
                else:
                    events.append({"type": "output_drift_cleared", "device": self.device_id,
                                   "message": f"{self.device_id}: outputs are back at the reference",
                                   "was": self.drift_state})
                self.drift_state = state
        if self.cfg.slices.enabled and self.slices.overall.frames:
            body.slices = self.slices.summary(self.reference)
        for e in events:
            self.events_sent[e["type"]] = self.events_sent.get(e["type"], 0) + 1
        return body, events

    def reset(self) -> None:
        """Start the next window (the health window keeps its last frame, so freezes across windows count)."""
        self.health.clear()
        self.run_flips[0] += self.flips.flips
        self.run_flips[1] += self.flips.counted
        self.flips.clear()
        self.run_slices.merge(self.slices)
        self.slices.clear()
        self.replaying_frames = 0

    # --- end of run ------------------------------------------------------------------------------

    def run_summary(self) -> dict[str, Any]:
        """What `edgeprobe run` prints at the end: open alerts, events, drift, flips, slices, exemplars."""
        flips, counted = self.run_flips[0] + self.flips.flips, self.run_flips[1] + self.flips.counted
        slices = SliceTable(self.run_slices.edges)
        slices.merge(self.run_slices)
        slices.merge(self.slices)
        out: dict[str, Any] = {
            "reference": self.reference_source, "alerts_open": sorted(self.alerts.active),
            "health": {**self.last_health, "alerts": sorted(self.alerts.active)},
            "events": dict(self.events_sent), "bands": self.alerts.summary().get("bands"),
            "temporal": {"flips": flips, "counted": counted, "flip_rate": flips / counted if counted else None},
            "exemplars": [{k: v for k, v in e.items() if k != "jpeg_base64"} for e in self.exemplars.worst()],
        }
        if self.last_drift:
            out["drift"] = {k: self.last_drift.get(k) for k in ("attribution", "message", "frames", "outputs",
                                                                "inputs_moved", "drifted")}
        elif self.cfg.drift.enabled:
            # A short run ends before its first comparison: say so, rather than leave drift out silently.
            need, have = self.cfg.drift.min_frames, len(self.rows)
            why = "no reference yet (still learning the first frames)" if self.reference is None else \
                f"{have} of the {need} sampled frames a comparison needs"
            out["drift"] = {"attribution": None, "frames": have, "drifted": None,
                            "message": f"no drift verdict yet: {why}; health and drift sample one frame in "
                                       f"{self.every} (monitor.health.every_n_frames)"}
        if slices.overall.frames:
            s = slices.summary(self.reference)
            out["slices"] = {"headlines": s.get("headlines", []), "overall": s["overall"]}
        return out


def record_baseline(loaded: Any, max_frames: int, on_frame: Any = None) -> Baseline:
    """Run the configured model on the configured source and record what normal looks like.

    ``loaded`` is the agent's LoadedConfig; frames are taken as the agent would take them (same
    preprocessing, same task adapter), so a baseline compares like with like.
    """
    import datetime as dt
    import platform

    from edgeprobe import __version__
    from edgeprobe.agent.pipeline import open_pipeline
    from edgeprobe.agent.sources import open_source

    cfg = loaded.config
    pipeline = open_pipeline(cfg.model, cfg.task)
    backend, adapter = pipeline.backend, pipeline.adapter
    src = require_source(cfg, str(loaded.path or "config"))
    source = open_source(src.uri, loop=src.loop, pace=False, fail_fast=True, open_timeout_s=src.open_timeout_s,
                         read_timeout_s=src.read_timeout_s, backoff_initial_s=src.backoff_initial_s,
                         backoff_max_s=src.backoff_max_s)
    health = HealthWindow()
    recorder = Recorder()
    described = source.describe()
    try:
        for frame in source:
            prediction = pipeline.predict(frame.image)
            stats = health.add(frame.image, frame.t_capture_ns)
            recorder.add(make_row(stats, adapter, prediction, time.time()))
            if on_frame:
                on_frame(recorder.frames)
            if recorder.frames >= max_frames:
                break
    finally:
        source.close()
    if recorder.frames == 0:
        raise ConfigError(f"source {described.get('uri', src.uri)} gave no frames, so there is nothing to record; "
                          "point source.uri at a video, folder or camera with frames")
    return recorder.build(
        backend.sha256, model=Path(cfg.model.path).name, task=adapter.name, device_id=cfg.device_id,
        source=described, recorded_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        agent_version=__version__, host=platform.node(), config_sha256=loaded.sha256)
