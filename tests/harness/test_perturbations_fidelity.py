"""Fidelity: edgeprobe's ImageNet-C corruptions against the reference imagecorruptions 1.1.2.

Speed must not be bought with wrong pictures. For each of the 19
corruptions and each severity 1..5, both implementations corrupt the same
real images (three photographs and a frame of the pedestrian video); the
random draws differ, so what is compared are statistics that do not depend
on the draw: the mean absolute change, the standard deviation of the
change, PSNR and SSIM against the clean image, averaged over the images.
The tolerances below are what was measured plus a margin; a deliberate
difference (documented in each registry row's ``notes``) is held to them too.

The reference runs in its own venv (``make ref-venv``), all jobs in one
subprocess call; without it the test skips and says how to get it.

``python tests/harness/test_perturbations_fidelity.py`` prints the table.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edgeprobe.harness import perturbations as P

REPO = Path(__file__).resolve().parents[2]
REF_PYTHON = REPO / ".venv-ref" / "bin" / "python"
RUNNER = REPO / "benchmarks" / "imagecorruptions_ref.py"

#: Frame size per corruption: small to keep the reference fast, large enough for the fast paths
#: (elastic's coarse grid needs sigma = 1% of the frame >= 1.5 px); glass blur's Python loops get a tiny frame.
SIZE = (192, 144)
SIZES = {"elastic_transform": (400, 300), "glass_blur": (64, 48)}
SEVERITIES = (1, 2, 3, 4, 5)
#: Seeds per image: corruptions whose look depends on a few big random choices (which frost texture, the
#: fog's large-scale shape, where drops land) need more draws before their averages settle.
SEEDS = {"frost": 6, "fog": 4, "spatter": 4}
#: Only these corruptions are compared (all 19 unless narrowed for tuning).
NAMES: tuple[str, ...] = P.IMAGENET_C

#: (mean |change| relative, PSNR dB, SSIM) tolerances: the worst agreement measured over severities 1..5
#: (in the comment) plus a margin. The default is for the corruptions computed by the same formula.
DEFAULT_TOL = (0.05, 0.4, 0.015)  # measured: |d| within 1 grey level, PSNR 0.25 dB, SSIM 0.006
TOL: dict[str, tuple[float, float, float]] = {
    "glass_blur": (0.1, 1.3, 0.06),  # measured 0.92 dB, SSIM 0.042: random-offset gather for the swap chains
    "motion_blur": (0.1, 0.7, 0.05),  # 0.37 dB, 0.035: sheared 1-D kernel, tap rounding
    "zoom_blur": (0.1, 0.8, 0.05),  # 0.48 dB, 0.037: 16 geometric zooms by doubling
    "snow": (0.1, 1.0, 0.07),  # 2.6% |d|, 0.62 dB, 0.047: small-grid flakes, uint8 blend
    "frost": (0.3, 2.5, 0.05),  # 24% |d|, 1.95 dB, 0.031: procedural textures (crops differ in brightness)
    "fog": (0.25, 2.2, 0.05),  # 17.5% |d|, 1.65 dB, 0.033: octave sum instead of diamond-square
    "pixelate": (0.05, 0.8, 0.04),  # 0.53 dB, 0.025: OpenCV's area/nearest resampling vs PIL's
    "spatter": (0.1, 2.0, 0.04),  # 3% |d|, 1.49 dB (sparse drops), 0.023
    "elastic_transform": (0.05, 0.5, 0.03),  # 0.27 dB, 0.015: field from a coarser grid
}


def _ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM on the grey images (Wang et al. 2004 constants, Gaussian window sigma 1.5)."""
    x = cv2.cvtColor(a, cv2.COLOR_BGR2GRAY).astype(np.float64)
    y = cv2.cvtColor(b, cv2.COLOR_BGR2GRAY).astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(z: np.ndarray) -> np.ndarray:
        return np.asarray(cv2.GaussianBlur(z, (11, 11), 1.5))

    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(s.mean())


def stats(clean: np.ndarray, out: np.ndarray) -> tuple[float, float, float, float]:
    d = out.astype(np.float64) - clean.astype(np.float64)
    mse = float((d**2).mean())
    psnr = 99.0 if mse == 0 else 10 * math.log10(255.0**2 / mse)
    return float(np.abs(d).mean()), float(d.std()), psnr, _ssim(clean, out)


@lru_cache(maxsize=4)
def images(size: tuple[int, int]) -> dict[str, np.ndarray]:
    from tests.conftest import asset

    out = {}
    for name in ("baboon.jpg", "fruits.jpg", "building.jpg"):
        img = cv2.imread(str(asset(name)))
        out[name] = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    cap = cv2.VideoCapture(str(asset("vtest.avi")))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 120)
    ok, frame = cap.read()
    cap.release()
    assert ok
    out["vtest#120"] = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    return out


def _jobs() -> list[tuple[str, tuple[int, int], str, int, int]]:
    """(corruption, frame size, image, severity, seed) for every comparison."""
    return [(name, SIZES.get(name, SIZE), key, sev, 1000 * sev + k)
            for name in NAMES for sev in SEVERITIES for key in images(SIZES.get(name, SIZE))
            for k in range(SEEDS.get(name, 1))
            if not (name == "glass_blur" and key in ("building.jpg", "vtest#120"))]


@lru_cache(maxsize=1)
def reference_outputs() -> dict[tuple[str, str, int, int], np.ndarray]:
    """Every job through the reference in one subprocess (RGB in, converted back to BGR)."""
    jobs = _jobs()
    with tempfile.TemporaryDirectory() as tmp:
        arrays: dict[str, np.ndarray] = {}
        spec_jobs = []
        for name, size, key, sev, seed in jobs:
            akey = f"{key}@{size[0]}x{size[1]}"
            if akey not in arrays:
                arrays[akey] = cv2.cvtColor(images(size)[key], cv2.COLOR_BGR2RGB)
            spec_jobs.append([akey, name, sev, seed])
        np.savez(Path(tmp) / "in.npz", **arrays)
        spec = {"images": str(Path(tmp) / "in.npz"), "jobs": spec_jobs, "out": str(Path(tmp) / "out.npz")}
        (Path(tmp) / "spec.json").write_text(json.dumps(spec))
        subprocess.run([str(REF_PYTHON), str(RUNNER), "run", str(Path(tmp) / "spec.json")], check=True,
                       capture_output=True, timeout=300)
        with np.load(Path(tmp) / "out.npz") as res:
            return {(name, key, sev, seed): cv2.cvtColor(res[f"out{i}"], cv2.COLOR_RGB2BGR)
                    for i, (name, _size, key, sev, seed) in enumerate(jobs)}


def our_seed(name: str, ref_seed: int) -> int:
    """The seed for edgeprobe's side; for frost, one that picks the same texture style as the reference did.

    Frost's statistics are dominated by which of five textures is drawn
    (their mean brightness runs from 104 to 214), so the comparison is made
    style for style: edgeprobe's styles carry the reference photographs'
    colour statistics in the same order.
    """
    if name != "frost":
        return ref_seed
    style = np.random.RandomState(ref_seed).randint(5)
    return next(s for s in range(ref_seed, ref_seed + 1000) if np.random.default_rng(s).integers(5) == style)


def compare() -> dict[tuple[str, int], dict[str, Any]]:
    """Per (corruption, severity): mean of each statistic over the images, for both implementations."""
    ref = reference_outputs()
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for name, size, key, sev, seed in _jobs():
        clean = images(size)[key]
        ours = P.apply(name, clean, sev, seed=our_seed(name, seed))
        row = rows.setdefault((name, sev), {"ours": [], "ref": []})
        row["ours"].append(stats(clean, ours))
        row["ref"].append(stats(clean, ref[(name, key, sev, seed)]))
    for row in rows.values():
        row["ours"] = np.mean(row["ours"], axis=0)
        row["ref"] = np.mean(row["ref"], axis=0)
    return rows


def _missing_reference() -> str | None:
    if not REF_PYTHON.exists():
        return f"reference imagecorruptions venv missing ({REF_PYTHON}): run `make ref-venv`"
    return None


@pytest.mark.skipif(_missing_reference() is not None, reason=_missing_reference() or "")
def test_imagenet_c_statistics_match_the_reference() -> None:
    rows = compare()
    bad = []
    for (name, sev), row in sorted(rows.items()):
        mad_o, _, psnr_o, ssim_o = row["ours"]
        mad_r, _, psnr_r, ssim_r = row["ref"]
        t_mad, t_psnr, t_ssim = TOL.get(name, DEFAULT_TOL)
        if abs(mad_o - mad_r) > t_mad * mad_r + 1.0 or abs(psnr_o - psnr_r) > t_psnr or abs(ssim_o - ssim_r) > t_ssim:
            bad.append(f"{name}@{sev}: |d| {mad_o:.1f} vs {mad_r:.1f}, PSNR {psnr_o:.2f} vs {psnr_r:.2f}, "
                       f"SSIM {ssim_o:.3f} vs {ssim_r:.3f}")
    assert len(rows) == 19 * 5
    assert not bad, "\n".join(bad)


# --- at real sizes --------------------------------------------------------------------------------------------
#: 640x480 on a bright and a dark frame: parameters fitted at small sizes must hold where cameras are
REAL_SIZE = (640, 480)
#: mean |change| ratio ours / reference at every severity; frost, fog and spatter depend on a few big random
#: choices (texture crop, haze shape, where drops land), so their band is wider and they average 3 draws
REAL_BAND, WIDE_BAND = (0.8, 1.25), (0.6, 1.6)
WIDE = ("frost", "fog", "spatter")


@lru_cache(maxsize=1)
def real_frames() -> dict[str, np.ndarray]:
    """A bright frame (the building photograph, brightened to a mean near 165) and a dark one (the pedestrian
    video at 30%, mean near 34), both 640x480 BGR."""
    from tests.conftest import asset

    building = cv2.resize(cv2.imread(str(asset("building.jpg"))), REAL_SIZE, interpolation=cv2.INTER_AREA)
    cap = cv2.VideoCapture(str(asset("vtest.avi")))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 120)
    ok, frame = cap.read()
    cap.release()
    assert ok
    dark = cv2.resize(frame, REAL_SIZE, interpolation=cv2.INTER_AREA).astype(np.float32) * 0.3
    return {"bright": np.clip(building.astype(np.float32) * 1.3, 0, 255).astype(np.uint8),
            "dark": dark.astype(np.uint8)}


def real_size_ratios() -> dict[tuple[str, str, int], float]:
    """(corruption, frame, severity) -> mean |change| of ours / the reference's, averaged over the draws.

    The reference's outputs for these fixed seeds are cached under ~/.cache/edgeprobe/fidelity (keyed by the
    inputs, jobs and the runner's source): glass blur alone takes minutes in the reference's Python loops.
    """
    import hashlib

    frames = real_frames()
    jobs = [(name, key, sev, 1000 * sev + k) for name in P.IMAGENET_C for key in frames for sev in SEVERITIES
            for k in range(3 if name in WIDE else 1)]
    digest = hashlib.sha256(json.dumps(jobs).encode() + RUNNER.read_bytes()
                            + b"".join(v.tobytes() for v in frames.values())).hexdigest()[:16]
    cache = Path.home() / ".cache" / "edgeprobe" / "fidelity" / f"ref-640x480-{digest}.npz"
    if not cache.exists():
        cache.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            np.savez(Path(tmp) / "in.npz", **{k: cv2.cvtColor(v, cv2.COLOR_BGR2RGB) for k, v in frames.items()})
            spec = {"images": str(Path(tmp) / "in.npz"), "jobs": [[k, n, s, seed] for n, k, s, seed in jobs],
                    "out": str(Path(tmp) / "out.npz")}
            (Path(tmp) / "spec.json").write_text(json.dumps(spec))
            subprocess.run([str(REF_PYTHON), str(RUNNER), "run", str(Path(tmp) / "spec.json")], check=True,
                           capture_output=True, timeout=900)
            with np.load(Path(tmp) / "out.npz") as res:
                np.savez_compressed(cache, **{f"out{i}": res[f"out{i}"] for i in range(len(jobs))})
    sums: dict[tuple[str, str, int], list[float]] = {}
    with np.load(cache) as res:
        for i, (name, key, sev, seed) in enumerate(jobs):
            clean = frames[key].astype(np.float64)
            ref = cv2.cvtColor(res[f"out{i}"], cv2.COLOR_RGB2BGR).astype(np.float64)
            ours = P.apply(name, frames[key], sev, seed=our_seed(name, seed)).astype(np.float64)
            acc = sums.setdefault((name, key, sev), [0.0, 0.0])
            acc[0] += float(np.abs(ours - clean).mean())
            acc[1] += float(np.abs(ref - clean).mean())
    return {k: o / r if r > 0 else float("inf") for k, (o, r) in sums.items()}


@pytest.mark.skipif(_missing_reference() is not None, reason=_missing_reference() or "")
@pytest.mark.timeout(1200)  # the first run computes the reference (minutes: glass blur); later runs read the cache
def test_imagenet_c_at_640x480_on_a_bright_and_a_dark_frame() -> None:
    ratios = real_size_ratios()
    assert len(ratios) == 19 * 2 * 5
    bad = [f"{name}@{sev} on the {key} frame: {r:.2f}x the reference's mean |change|"
           for (name, key, sev), r in sorted(ratios.items())
           if not (WIDE_BAND if name in WIDE else REAL_BAND)[0] <= r <= (WIDE_BAND if name in WIDE else REAL_BAND)[1]]
    assert not bad, "\n".join(bad)


if __name__ == "__main__":  # the agreement table, for the docs and for tuning
    sys.path.insert(0, str(REPO))
    if len(sys.argv) > 1:
        NAMES = tuple(sys.argv[1].split(","))
    for (name, sev), row in sorted(compare().items(), key=lambda kv: (P.IMAGENET_C.index(kv[0][0]), kv[0][1])):
        o, r = row["ours"], row["ref"]
        print(f"{name:18s} {sev}  |d| {o[0]:6.2f} {r[0]:6.2f}  sd {o[1]:6.2f} {r[1]:6.2f}  "
              f"PSNR {o[2]:6.2f} {r[2]:6.2f}  SSIM {o[3]:.3f} {r[3]:.3f}")
