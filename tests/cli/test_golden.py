"""Golden equivalence across hosts whose video decoders differ: the verdict feeds the recorded input tensors,
and the decoder difference is a separate, measured warning (never a model failure, never silent).

"Another host's decoder" is played by the same 60 frames re-encoded as lossy MJPG: the frame indices are the
recorded ones but every decoded pixel array differs, as vtest.avi's do between x86_64 and aarch64 OpenCV.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from tests.cli.test_check import small_suite, write_suite
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def redecoded_clip(tmp_path_factory: pytest.TempPathFactory, short_clip: Path) -> Path:
    out = tmp_path_factory.mktemp("redecoded") / "pedestrians-60-q40.avi"
    cap = cv2.VideoCapture(str(short_clip))
    writer = None
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if writer is None:
            writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, frame.shape[1::-1])
            writer.set(cv2.VIDEOWRITER_PROP_QUALITY, 40)
        writer.write(frame)
    assert writer is not None
    writer.release()
    cap.release()
    return out


def _golden_check(result: dict[str, Any]) -> dict[str, Any]:
    (check,) = [c for c in result["checks"] if c["kind"] == "golden"]
    return dict(check)


def test_a_host_that_decodes_differently_is_judged_on_the_recorded_frames_and_warned(
        tmp_path: Path, orientation_model: Path, short_clip: Path, redecoded_clip: Path) -> None:
    data = small_suite(orientation_model, short_clip, [{"kind": "golden", "file": "ref.npz", "tolerance": 0.0}])
    suite = write_suite(tmp_path / "s.yaml", data)
    rec = run_cli("golden", "record", str(suite), "-o", str(tmp_path / "ref.npz"))
    assert rec.returncode == 0, rec.stderr
    assert "and the frames and input tensors themselves" in rec.stdout
    with np.load(tmp_path / "ref.npz") as z:
        stored = [z[f"f{i}_in"] for i in range(6)]
        assert z["f0_x"].shape == (1, 3, 224, 224) and z["f0_x"].dtype == np.float32  # the tensor fed, too
    cap = cv2.VideoCapture(str(short_clip))
    first = cap.read()[1]
    cap.release()
    np.testing.assert_array_equal(stored[0], first)  # lossless: the very pixels that were fed

    data["source"]["uri"] = str(redecoded_clip)
    write_suite(suite, data)
    proc = run_cli("check", str(suite), "--json")
    result = json.loads(proc.stdout)
    check = _golden_check(result)
    # the verdict: same model, same input tensors -> the same outputs, bit for bit on one host and runtime
    assert proc.returncode == 0 and check["status"] == "pass", proc.stdout[-2000:] + proc.stderr
    assert check["figure"] == 1.0 and check["details"]["max_abs_output_diff"] == 0.0
    assert check["details"]["fed"] == "recorded input tensors"
    # the finding beside it: every frame decoded differently, by a measured amount
    inputs = check["details"]["inputs"]
    assert inputs["decoded_differently"] == 6 and inputs["frames"] == 6 and inputs["left_out"] == 0
    assert inputs["preprocess_differ"] == 0 and inputs["max_tensor_diff"] is None  # same host: same resize
    assert 0 < inputs["max_pixel_diff"] <= 255 and 0 < inputs["mean_pixel_diff"] < inputs["max_pixel_diff"]
    (warning,) = result["warnings"]
    assert f"decodes {redecoded_clip} differently" in warning and "6 of 6 frames differ" in warning
    assert f"by up to {inputs['max_pixel_diff']} of 255" in warning and "fed the recorded input tensors" in warning
    assert "judges the model alone" in warning
    assert f"{inputs['answers_differ_on_local_pipeline']} of 6 frames give a different answer" in warning
    # and the table a person reads says so too
    text = run_cli("check", str(suite), env={"COLUMNS": "300"})
    shown = " ".join(text.stdout.split())
    assert text.returncode == 0 and "warning:" in shown and "fed the recorded input tensors" in shown


def test_identical_decoding_gives_no_warning_and_a_model_change_still_fails(
        tmp_path: Path, orientation_model: Path, short_clip: Path) -> None:
    data = small_suite(orientation_model, short_clip, [{"kind": "golden", "file": "ref.npz"}])
    suite = write_suite(tmp_path / "s.yaml", data)
    assert run_cli("golden", "record", str(suite), "-o", str(tmp_path / "ref.npz")).returncode == 0
    ok = json.loads(run_cli("check", str(suite), "--json").stdout)
    assert ok["warnings"] == [] and _golden_check(ok)["details"]["inputs"]["decoded_differently"] == 0
    assert "input_warning" not in _golden_check(ok)["details"]
    # a reference whose frame 2 has another top-1 class: a model difference on identical inputs is a failure
    with np.load(tmp_path / "ref.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["f2_o0"] = np.roll(arrays["f2_o0"], 1, axis=-1)
    np.savez(tmp_path / "ref.npz", **arrays)
    bad = run_cli("check", str(suite), "--json")
    check = _golden_check(json.loads(bad.stdout))
    assert bad.returncode == 1 and check["status"] == "fail" and check["details"]["differ"] == [16]


def test_without_recorded_frames_differently_decoded_ones_are_left_out_and_said_so(
        tmp_path: Path, orientation_model: Path, short_clip: Path, redecoded_clip: Path) -> None:
    data = small_suite(orientation_model, short_clip, [{"kind": "golden", "file": "ref.npz"}])
    suite = write_suite(tmp_path / "s.yaml", data)
    rec = run_cli("golden", "record", str(suite), "-o", str(tmp_path / "ref.npz"), "--no-frames")
    assert rec.returncode == 0 and "frame and tensor hashes only" in rec.stdout, rec.stderr
    with np.load(tmp_path / "ref.npz") as z:
        assert not [k for k in z.files if k.endswith(("_in", "_x"))]
    data["source"]["uri"] = str(redecoded_clip)
    write_suite(suite, data)
    proc = run_cli("check", str(suite), "--json")
    result = json.loads(proc.stdout)
    check = _golden_check(result)
    # nothing left to judge the model on: inconclusive (exit 3), not a pass and not a model failure
    assert proc.returncode == 3 and check["status"] == "inconclusive", proc.stdout[-2000:]
    assert check["details"]["inputs"]["left_out"] == 6 and check["details"]["inputs"]["max_pixel_diff"] is None
    (warning,) = result["warnings"]
    assert "those 6 frames are left out of the verdict (it rests on 0 frames)" in warning


def test_a_schema_1_file_still_compares(tmp_path: Path, orientation_model: Path, short_clip: Path) -> None:
    """A file from a 0.1 agent (outputs and 16-digit digests only) is read, judged on the frames decoded here."""
    from edgeprobe.agent.golden import frame_digest

    data = small_suite(orientation_model, short_clip, [{"kind": "golden", "file": "ref.npz"}])
    suite = write_suite(tmp_path / "s.yaml", data)
    assert run_cli("golden", "record", str(suite), "-o", str(tmp_path / "ref.npz")).returncode == 0
    with np.load(tmp_path / "ref.npz") as z:
        arrays = {k: z[k] for k in z.files if not k.endswith(("_in", "_x"))}
        images = [z[f"f{i}_in"] for i in range(6)]
    meta = json.loads(arrays["meta"].tobytes())
    meta = {k: v for k, v in meta.items() if k not in ("frames_stored", "decoder", "source")}
    meta["schema"] = "edgeprobe-golden/1"
    meta["frames"] = [{"index": f["index"], "digest": frame_digest(img)}
                      for f, img in zip(meta["frames"], images, strict=True)]
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(tmp_path / "ref.npz", **arrays)
    proc = run_cli("check", str(suite), "--json")
    check = _golden_check(json.loads(proc.stdout))
    assert proc.returncode == 0 and check["figure"] == 1.0, proc.stdout[-2000:] + proc.stderr
    assert check["details"]["fed"].startswith("frames decoded here")
    assert check["details"]["inputs"]["decoded_differently"] == 0


def test_identical_frames_preprocessed_differently_are_named_in_the_warning(
        tmp_path: Path, orientation_model: Path, short_clip: Path) -> None:
    """A host whose resize rounds otherwise (aarch64's OpenCV did, on every frame): said, kept out of the verdict."""
    data = small_suite(orientation_model, short_clip, [{"kind": "golden", "file": "ref.npz"}])
    suite = write_suite(tmp_path / "s.yaml", data)
    assert run_cli("golden", "record", str(suite), "-o", str(tmp_path / "ref.npz")).returncode == 0
    with np.load(tmp_path / "ref.npz") as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(arrays["meta"].tobytes())
    meta["frames"][1]["input_sha256"] = "0" * 64  # the reference host's tensor for frame 8 was another one
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(tmp_path / "ref.npz", **arrays)
    result = json.loads(run_cli("check", str(suite), "--json").stdout)
    check = _golden_check(result)
    assert check["status"] == "pass" and check["details"]["inputs"]["preprocess_differ"] == 1
    assert check["details"]["inputs"]["decoded_differently"] == 0
    (warning,) = result["warnings"]
    assert "into different input tensors on 1 of 6 frames, by up to 0" in warning and "decodes" not in warning
    assert "fed the recorded input tensors, so it judges the model alone" in warning
