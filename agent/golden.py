"""Golden outputs: record the model's raw outputs on the suite's frames, and compare a later run with them.

The record is an npz of raw output arrays, the decoded frames themselves (lossless, as fed to the model) and
a JSON header (model hash, frame indices, each frame's and each input tensor's sha256, host). Another host
compares two things apart, because a user signing off a board asks two questions:

* the verdict: the same model on the *same frames* gives the same answers (through the task adapter's
  disagreement, so "equivalent" means the same answers, not the same floats). The recorded frames are fed,
  so a board whose video decoder differs is not mistaken for a board whose kernels differ;
* a finding beside it: whether this host decodes the source into the same pixels (per-frame sha256 and the
  largest pixel difference) and what its own decoding does to the answers. It is a warning with its measured
  size, never a model failure, and never left out.

A file recorded without frames (``--no-frames``, or schema 1) can only feed this host's decoding: frames
whose pixels differ are then left out of the verdict, and the warning says so.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import platform
from dataclasses import dataclass, field
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

SCHEMA = "edgeprobe-golden/2"
#: files this version reads: schema 1 held outputs and 16-hex-digit frame digests, no frames
READS = (SCHEMA, "edgeprobe-golden/1")


def sha256(array: np.ndarray) -> str:
    """Of the array's bytes with its shape and dtype, so a 2x3 and a 3x2 frame of the same bytes differ."""
    a = np.ascontiguousarray(array)
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
    return h.hexdigest()


def frame_digest(image: np.ndarray) -> str:
    """Schema 1's digest (bytes only, 16 hex digits), kept to compare with files recorded by 0.1 agents."""
    return hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()[:16]


def record(session: Session, out: Path, frames: bool = True) -> dict[str, Any]:
    """Store raw outputs of the frame set with the model hash, and the frames themselves unless ``frames`` is off."""
    arrays: dict[str, np.ndarray] = {}
    rows = []
    for i, frame in enumerate(session.frames):
        tensor = session.backend.preprocess(frame.image)
        for k, o in enumerate(session.backend.infer(tensor)):
            arrays[f"f{i}_o{k}"] = np.asarray(o)
        if frames:
            arrays[f"f{i}_in"] = np.ascontiguousarray(frame.image)
        rows.append({"index": frame.index, "sha256": sha256(frame.image), "input_sha256": sha256(tensor)})
    meta = {
        "schema": SCHEMA, "model_sha256": session.backend.sha256, "model": Path(session.backend.path).name,
        "runtime": session.backend.runtime, "task": session.adapter.name, "suite": session.loaded.suite.name,
        "source": session.loaded.suite.source.uri, "frames": rows, "frames_stored": frames,
        "outputs": len(session.backend.output_specs), "host": platform.node(), "machine": platform.machine(),
        "decoder": _decoder(),
        "recorded": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "agent_version": __version__,
    }
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    atomic_write(out, lambda f: np.savez_compressed(f, **arrays))  # type: ignore[arg-type]
    return meta


def _decoder() -> str:
    """The OpenCV that decoded the frames: a different build is the usual reason pixels differ across hosts."""
    import cv2

    return f"opencv {cv2.__version__}"


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
    if meta.get("schema") not in READS:
        raise ConfigError(f"golden file {path} has schema {meta.get('schema')!r}, expected {SCHEMA}; re-record it "
                          "with this version's `edgeprobe golden record`")
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


@dataclass
class Inputs:
    """How this host's decoding of the frame set compares with the reference host's (the decoder finding)."""

    frames: int = 0
    #: frames whose decoded pixels (sha256) differ from the recorded ones
    differ: list[int] = field(default_factory=list)
    #: largest |pixel difference| over those frames (None: unknown, the file holds no frames, or shapes differ)
    max_pixel_diff: int | None = None
    mean_pixel_diff: float | None = None
    #: of the frames decoded differently, those whose answer differs when this host's decoding is fed
    answers_differ: list[int] = field(default_factory=list)
    #: frames where identical pixels preprocessed to a different tensor (this host's resize or colour conversion)
    preprocess_differ: list[int] = field(default_factory=list)
    #: frames decoded differently that could not be replaced by recorded ones (left out of the verdict)
    left_out: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"frames": self.frames, "decoded_differently": len(self.differ), "differ": self.differ[:20],
                "max_pixel_diff": self.max_pixel_diff, "mean_pixel_diff": self.mean_pixel_diff,
                "answers_differ_on_local_decoding": len(self.answers_differ),
                "preprocess_differ": len(self.preprocess_differ), "left_out": len(self.left_out)}

    def warning(self, file: str, source: str, meta: dict[str, Any], decoder: str) -> str | None:
        """One plain sentence for the user, with the measured size; None when inputs matched everywhere."""
        parts = []
        ref = f"{meta.get('host', '?')} ({meta.get('machine', '?')}, {meta.get('decoder', 'decoder unknown')})"
        n = self.frames
        if self.differ:
            size = ""
            if self.max_pixel_diff is not None and self.mean_pixel_diff is not None:
                size = (f", by up to {self.max_pixel_diff} of 255 per pixel value "
                        f"(mean {self.mean_pixel_diff:.2g} over those frames)")
            parts.append(f"this host ({platform.machine()}, {decoder}) decodes {source} differently from the reference "
                         f"host {ref}: {len(self.differ)} of {n} frames differ{size}")
            if self.left_out:
                parts.append(f"the golden file holds no frames to feed instead, so those {len(self.left_out)} frames "
                             f"are left out of the verdict (it rests on {n - len(self.left_out)} frames); re-record "
                             "with `edgeprobe golden record` (it stores the frames) to compare the model on "
                             "identical inputs")
            else:
                parts.append("the golden verdict fed the recorded frames, so it judges this host's preprocessing and "
                             f"model on identical pixels; fed this host's own decoding, {len(self.answers_differ)} of "
                             f"{len(self.differ)} of those frames give a different answer")
        if self.preprocess_differ:
            parts.append(f"identical frames preprocessed to different input tensors on {len(self.preprocess_differ)} "
                         f"of {n} frames (this host's OpenCV resizes or converts colour with other rounding); the "
                         "verdict includes that")
        return f"golden {Path(file).name}: " + "; ".join(parts) if parts else None


def compare(session: Session, check: S.GoldenCheck) -> checks.Counts:
    """Frames whose decoded prediction moved past the tolerance from the recorded one, fed the recorded frames.

    The decoder finding (``inputs`` in the details, and ``input_warning`` when anything differed) is measured on
    the side: what this host's own decoding looks like and what it does to the answers.
    """
    meta, arrays = load(check.file)
    ref_hash = check_model(session, check, meta)
    tol = check.tolerance if check.tolerance is not None else session.adapter.threshold
    n_out = int(meta["outputs"])
    frames = meta["frames"]
    if len(frames) > len(session.frames):
        raise ConfigError(f"golden file {check.file} holds {len(frames)} frames but the suite reads only "
                          f"{len(session.frames)}; raise source.frames or re-record")
    adapter, backend = session.adapter, session.backend
    differ: list[int] = []
    inputs = Inputs(frames=len(frames))
    pixel_max, pixel_sum, pixel_count = -1, 0.0, 0
    max_abs = 0.0
    for i, rec in enumerate(frames):
        frame = session.frames[i]
        if frame.index != rec["index"]:
            raise ConfigError(f"golden file {check.file} was recorded on other frames (index {rec['index']} vs "
                              f"{frame.index}); keep source.skip/stride as recorded or re-record")
        ref_out = [arrays[f"f{i}_o{k}"] for k in range(n_out)]
        ref_answer = adapter.decode(ref_out)
        recorded = arrays.get(f"f{i}_in")
        same = (sha256(frame.image) == rec["sha256"] if "sha256" in rec
                else frame_digest(frame.image) == rec["digest"])
        if not same:
            inputs.differ.append(frame.index)
            if recorded is not None and recorded.shape == frame.image.shape:
                delta = np.abs(recorded.astype(np.int16) - frame.image.astype(np.int16))
                pixel_max = max(pixel_max, int(delta.max()))
                pixel_sum, pixel_count = pixel_sum + float(delta.sum()), pixel_count + delta.size
            local = adapter.decode(backend.infer(backend.preprocess(frame.image)))
            if adapter.disagreement(ref_answer, local) > tol:
                inputs.answers_differ.append(frame.index)
            if recorded is None:
                inputs.left_out.append(frame.index)
                continue
        fed = recorded if recorded is not None else frame.image
        tensor = backend.preprocess(fed)
        if "input_sha256" in rec and sha256(tensor) != rec["input_sha256"]:
            inputs.preprocess_differ.append(frame.index)
        now_out = backend.infer(tensor)
        for r, o in zip(ref_out, now_out, strict=True):
            if r.shape == np.shape(o):
                max_abs = max(max_abs, float(np.max(np.abs(r.astype(np.float64) - np.asarray(o, np.float64)))))
        if adapter.disagreement(ref_answer, adapter.decode(now_out)) > tol:
            differ.append(frame.index)
    if pixel_count:
        inputs.max_pixel_diff, inputs.mean_pixel_diff = pixel_max, pixel_sum / pixel_count
    details: dict[str, Any] = {
        "differ": differ[:20], "max_abs_output_diff": max_abs, "tolerance": tol, "reference_sha256": ref_hash,
        "fed": "recorded frames" if meta.get("frames_stored") else "frames decoded here (the file holds none)",
        "frames_decoded_differently": len(inputs.differ), "inputs": inputs.as_dict(),
        "recorded": meta.get("recorded"), "model": meta["model"], "host": meta["host"]}
    warning = inputs.warning(check.file, session.loaded.suite.source.uri, meta, _decoder())
    if warning:
        details["input_warning"] = warning
    return checks.Counts(len(differ), len(frames) - len(inputs.left_out), details)
