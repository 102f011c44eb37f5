"""Golden outputs: record the model's raw outputs on the suite's frames, and compare a later run with them.

The record is an npz of raw output arrays, the model's input tensors and the decoded frames they came from
(both lossless, exactly as fed), and a JSON header (model hash, frame indices, each frame's and tensor's
sha256, host, decoder). Another host answers apart the questions a user signing off a board asks:

* the verdict: the same model on the *same input tensors* gives the same answers (through the task adapter's
  disagreement, so "equivalent" means the same answers, not the same floats). The recorded tensors are fed,
  so a board whose video decoder or resize rounds otherwise is not mistaken for a board whose model kernels
  differ;
* the findings beside it, measured on the same frames: whether this host decodes the source into the same
  pixels (sha256 per frame, largest and mean pixel difference), whether its preprocessing turns the recorded
  frames into the same tensors (and by how much not), and how many answers this host's own decoding and
  preprocessing change. They are a warning with their measured size, never a model failure, never left out.

A file recorded without them (``--no-frames``, or schema 1) can only feed this host's own decoding: frames
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
    """Store raw outputs with the model hash, and the frames and input tensors themselves unless ``frames`` is off."""
    arrays: dict[str, np.ndarray] = {}
    rows = []
    for i, frame in enumerate(session.frames):
        tensor = np.array(session.backend.preprocess(frame.image))  # a copy: the preprocessor reuses its buffer
        for k, o in enumerate(session.backend.infer(tensor)):
            arrays[f"f{i}_o{k}"] = np.asarray(o)
        if frames:
            arrays[f"f{i}_in"] = np.ascontiguousarray(frame.image)
            arrays[f"f{i}_x"] = tensor
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
    """How this host's decoding and preprocessing of the frame set compare with the reference host's."""

    frames: int = 0
    #: frames whose decoded pixels (sha256) differ from the recorded ones
    differ: list[int] = field(default_factory=list)
    #: largest |pixel difference| over those frames (None: unknown, the file holds no frames, or shapes differ)
    max_pixel_diff: int | None = None
    mean_pixel_diff: float | None = None
    #: frames whose recorded pixels this host preprocessed into another tensor than the recorded one
    preprocess_differ: list[int] = field(default_factory=list)
    #: largest |difference| between those tensors, in the model's input units (None: no tensors recorded)
    max_tensor_diff: float | None = None
    #: frames whose answer differs when this host decodes and preprocesses them itself (the deployed path)
    answers_differ: list[int] = field(default_factory=list)
    #: frames decoded differently that could not be replaced by recorded inputs (left out of the verdict)
    left_out: list[int] = field(default_factory=list)
    #: what the verdict fed: "recorded input tensors", "recorded frames" or "frames decoded here"
    fed: str = "recorded input tensors"

    def as_dict(self) -> dict[str, Any]:
        return {"frames": self.frames, "decoded_differently": len(self.differ), "differ": self.differ[:20],
                "max_pixel_diff": self.max_pixel_diff, "mean_pixel_diff": self.mean_pixel_diff,
                "preprocess_differ": len(self.preprocess_differ), "max_tensor_diff": self.max_tensor_diff,
                "answers_differ_on_local_pipeline": len(self.answers_differ), "left_out": len(self.left_out)}

    def warning(self, file: str, source: str, meta: dict[str, Any], decoder: str) -> str | None:
        """One plain paragraph for the user, with the measured sizes; None when inputs matched everywhere."""
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
        if self.preprocess_differ:
            size = "" if self.max_tensor_diff is None else f", by up to {self.max_tensor_diff:.3g}"
            parts.append(f"its preprocessing (OpenCV resize and colour conversion) turns identical frames into "
                         f"different input tensors on {len(self.preprocess_differ)} of {n} frames{size}")
        if not parts:
            return None
        if self.left_out:
            parts.append(f"the golden file holds no frames to feed instead, so those {len(self.left_out)} frames are "
                         f"left out of the verdict (it rests on {n - len(self.left_out)} frames); re-record with "
                         "`edgeprobe golden record` (it stores the frames) to compare the model on identical inputs")
        else:
            judged = ("the model alone" if self.fed == "recorded input tensors"
                      else "this host's preprocessing and model")
            parts.append(f"the golden verdict fed the {self.fed}, so it judges {judged} on identical inputs; through "
                         f"this host's own decoding and preprocessing, {len(self.answers_differ)} of {n} frames give "
                         "a different answer")
        return f"golden {Path(file).name}: " + "; ".join(parts)


def _max_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0


def compare(session: Session, check: S.GoldenCheck) -> checks.Counts:
    """Frames whose decoded prediction moved past the tolerance from the recorded one, fed the recorded inputs.

    The decoder and preprocessing findings (``inputs`` in the details, and ``input_warning`` when anything
    differed) are measured on the side, with what this host's own path does to the answers.
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
    pixel_max, pixel_sum, pixel_count, tensor_max = -1, 0.0, 0, -1.0
    max_abs = 0.0
    for i, rec in enumerate(frames):
        frame = session.frames[i]
        if frame.index != rec["index"]:
            raise ConfigError(f"golden file {check.file} was recorded on other frames (index {rec['index']} vs "
                              f"{frame.index}); keep source.skip/stride as recorded or re-record")
        ref_out = [arrays[f"f{i}_o{k}"] for k in range(n_out)]
        ref_answer = adapter.decode(ref_out)
        rec_frame, rec_tensor = arrays.get(f"f{i}_in"), arrays.get(f"f{i}_x")
        same = (sha256(frame.image) == rec["sha256"] if "sha256" in rec
                else frame_digest(frame.image) == rec["digest"])
        if not same:
            inputs.differ.append(frame.index)
            if rec_frame is not None and rec_frame.shape == frame.image.shape:
                delta = np.abs(rec_frame.astype(np.int16) - frame.image.astype(np.int16))
                pixel_max = max(pixel_max, int(delta.max()))
                pixel_sum, pixel_count = pixel_sum + float(delta.sum()), pixel_count + delta.size
        # the preprocessing finding: this host's tensor from the recorded pixels (its own, where none are recorded)
        tensor_here = np.array(backend.preprocess(rec_frame if rec_frame is not None else frame.image))  # a copy
        if (rec_frame is not None or same) and "input_sha256" in rec and sha256(tensor_here) != rec["input_sha256"]:
            inputs.preprocess_differ.append(frame.index)
            if rec_tensor is not None and rec_tensor.shape == tensor_here.shape:
                tensor_max = max(tensor_max, _max_abs(rec_tensor, tensor_here))
        # the deployed path on this host: its own decoding and preprocessing, inferred only where they differ
        local = np.array(backend.preprocess(frame.image)) if rec_frame is not None and not same else tensor_here
        local_same = "input_sha256" in rec and sha256(local) == rec["input_sha256"]
        if rec_tensor is not None:
            fed, inputs.fed = rec_tensor, "recorded input tensors"
        elif rec_frame is not None:
            fed, inputs.fed = tensor_here, "recorded frames"
        elif same:
            fed, inputs.fed = tensor_here, "frames decoded here"
        else:
            inputs.left_out.append(frame.index)
            fed, inputs.fed = None, "frames decoded here"
        now_out = backend.infer(fed) if fed is not None else None
        reuse = now_out is not None and (fed is local or (local_same and fed is rec_tensor))
        local_out = now_out if reuse and now_out is not None else backend.infer(local)
        if adapter.disagreement(ref_answer, adapter.decode(local_out)) > tol:
            inputs.answers_differ.append(frame.index)
        if now_out is None:
            continue
        for r, o in zip(ref_out, now_out, strict=True):
            if r.shape == np.shape(o):
                max_abs = max(max_abs, _max_abs(r, np.asarray(o)))
        if adapter.disagreement(ref_answer, adapter.decode(now_out)) > tol:
            differ.append(frame.index)
    if pixel_count:
        inputs.max_pixel_diff, inputs.mean_pixel_diff = pixel_max, pixel_sum / pixel_count
    if tensor_max >= 0:
        inputs.max_tensor_diff = tensor_max
    details: dict[str, Any] = {
        "differ": differ[:20], "max_abs_output_diff": max_abs, "tolerance": tol, "reference_sha256": ref_hash,
        "fed": inputs.fed if not inputs.left_out else f"{inputs.fed} (the file holds none)",
        "frames_decoded_differently": len(inputs.differ), "inputs": inputs.as_dict(),
        "recorded": meta.get("recorded"), "model": meta["model"], "host": meta["host"]}
    warning = inputs.warning(check.file, session.loaded.suite.source.uri, meta, _decoder())
    if warning:
        details["input_warning"] = warning
    return checks.Counts(len(differ), len(frames) - len(inputs.left_out), details)
