"""Golden outputs: record the model's raw outputs on the suite's frames, and compare a later run with them.

The record is an npz of raw output arrays plus a JSON header (model hash,
frame indices and digests, host): a converted or quantised model is compared
with the reference on the very frames it was recorded on, through the task
adapter's disagreement, so "equivalent" means the same answers, not the same
floats.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeprobe import __version__
from edgeprobe.harness import checks
from edgeprobe.harness import suite as S
from edgeprobe.harness.errors import ConfigError
from edgeprobe.harness.fileio import atomic_write

if TYPE_CHECKING:
    from edgeprobe.agent.suite_session import Session

SCHEMA = "edgeprobe-golden/1"

def frame_digest(image: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()[:16]


def record(session: Session, out: Path) -> dict[str, Any]:
    """Store raw outputs of the frame set with the model hash (npz: arrays + a JSON header)."""
    arrays: dict[str, np.ndarray] = {}
    for i, frame in enumerate(session.frames):
        for k, o in enumerate(session.pipeline.outputs(frame.image)):
            arrays[f"f{i}_o{k}"] = np.asarray(o)
    meta = {
        "schema": SCHEMA, "model_sha256": session.backend.sha256, "model": Path(session.backend.path).name,
        "runtime": session.backend.runtime, "task": session.adapter.name, "suite": session.loaded.suite.name,
        "frames": [{"index": f.index, "digest": frame_digest(f.image)} for f in session.frames],
        "outputs": len(session.backend.output_specs), "host": platform.node(), "machine": platform.machine(),
        "recorded": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "agent_version": __version__,
    }
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    atomic_write(out, lambda f: np.savez_compressed(f, **arrays))  # type: ignore[arg-type]
    return meta


def load(path: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(arrays.pop("meta").tobytes().decode())
    except FileNotFoundError:
        raise ConfigError(f"golden file {path} does not exist; record it on the reference host with "
                          "`edgeprobe golden record SUITE -o FILE`") from None
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"golden file {path} is not a golden record ({exc}); re-record it") from None
    if meta.get("schema") != SCHEMA:
        raise ConfigError(f"golden file {path} has schema {meta.get('schema')!r}, expected {SCHEMA}")
    return meta, arrays


def check_model(session: Session, check: S.GoldenCheck, meta: dict[str, Any]) -> str:
    """The golden file's model hash, once it is known to be the model under test (or named on purpose)."""
    ref_hash = str(meta["model_sha256"])
    if ref_hash != session.backend.sha256 and check.reference_sha256 != ref_hash:
        raise ConfigError(
            f"golden file {check.file} was recorded from another model (sha256 {ref_hash[:12]}..., this model is "
            f"{session.backend.sha256[:12]}...); re-record it, or set reference_sha256: {ref_hash} on the check "
            "to compare a converted model on purpose")
    return ref_hash


def compare(session: Session, check: S.GoldenCheck) -> checks.Counts:
    """Frames whose decoded prediction moved past the tolerance from the recorded one (the catalogue judges)."""
    meta, arrays = load(check.file)
    ref_hash = check_model(session, check, meta)
    tol = check.tolerance if check.tolerance is not None else session.adapter.threshold
    n_out = int(meta["outputs"])
    frames = meta["frames"]
    if len(frames) > len(session.frames):
        raise ConfigError(f"golden file {check.file} holds {len(frames)} frames but the suite reads only "
                          f"{len(session.frames)}; raise source.frames or re-record")
    differ: list[int] = []
    decoder_changed = 0
    max_abs = 0.0
    for i, rec in enumerate(frames):
        frame = session.frames[i]
        if frame.index != rec["index"]:
            raise ConfigError(f"golden file {check.file} was recorded on other frames (index {rec['index']} vs "
                              f"{frame.index}); keep source.skip/stride as recorded or re-record")
        decoder_changed += int(frame_digest(frame.image) != rec["digest"])
        ref_out = [arrays[f"f{i}_o{k}"] for k in range(n_out)]
        now_out = session.pipeline.outputs(frame.image)
        for r, o in zip(ref_out, now_out, strict=True):
            if r.shape == np.shape(o):
                max_abs = max(max_abs, float(np.max(np.abs(r.astype(np.float64) - np.asarray(o, np.float64)))))
        d = session.adapter.disagreement(session.adapter.decode(ref_out), session.adapter.decode(now_out))
        if d > tol:
            differ.append(frame.index)
    return checks.Counts(len(differ), len(frames), {
        "differ": differ[:20], "max_abs_output_diff": max_abs, "tolerance": tol, "reference_sha256": ref_hash,
        "frames_decoded_differently": decoder_changed, "recorded": meta.get("recorded"), "model": meta["model"],
        "host": meta["host"]})
