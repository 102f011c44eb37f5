"""`edgeprobe perturbations` and `edgeprobe perturb` through the real console entry point."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeprobe.harness import perturbations as P
from tests.conftest import assert_clean_error, asset, run_cli


@pytest.fixture(scope="module")
def frame_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("img") / "fruits.png"
    img = cv2.resize(cv2.imread(str(asset("fruits.jpg"))), (160, 120), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(path), img)
    return path


def test_listing_names_every_perturbation_and_transform() -> None:
    proc = run_cli("perturbations", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert {r["name"] for r in data["perturbations"]} == set(P.names())
    assert {g["name"] for g in data["geometric"]} == set(P.GEOMETRIC)
    row = next(r for r in data["perturbations"] if r["name"] == "glass_blur")
    assert row["severities"]["3"][:3] == [1.0, 2.0, 3.0] and row["notes"]
    text = run_cli("perturbations")
    assert text.returncode == 0
    for name in [*P.names(), "rot90", "hflip"]:
        assert name in text.stdout, name


def test_replay_is_bit_exact(frame_png: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.png"
    proc = run_cli("perturb", str(frame_png), "--name", "motion_blur", "--severity", "3.5", "--seed", "12",
                   "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    expected = P.apply("motion_blur", cv2.imread(str(frame_png), cv2.IMREAD_UNCHANGED), 3.5, 12)
    assert np.array_equal(cv2.imread(str(out), cv2.IMREAD_UNCHANGED), expected)
    assert expected.tobytes() and "sha256" in proc.stdout
    flip = tmp_path / "flip.png"
    assert run_cli("perturb", str(frame_png), "--name", "rot90", "-o", str(flip)).returncode == 0
    assert cv2.imread(str(flip)).shape == (160, 120, 3)


def test_contact_sheet_has_a_row_per_perturbation(frame_png: Path, tmp_path: Path) -> None:
    sheet = tmp_path / "sheet.png"
    proc = run_cli("perturb", str(frame_png), "--grid", "--thumb", "40", "-o", str(sheet))
    assert proc.returncode == 0, proc.stderr
    img = cv2.imread(str(sheet))
    rows = sum(not P.get(n).temporal for n in P.names())
    assert img.shape[0] == 22 + rows * (30 + 2) and img.shape[1] == 150 + 6 * (40 + 2)


def test_unknown_name_gets_a_suggestion(frame_png: Path, tmp_path: Path) -> None:
    proc = run_cli("perturb", str(frame_png), "--name", "gausian_blur", "-o", str(tmp_path / "o.png"))
    assert_clean_error(proc, r'unknown perturbation .gausian_blur. \(did you mean "gaussian_blur"\?\)')


@pytest.mark.parametrize("severity", ["7", "-1", "nan"])
def test_severity_outside_0_5(frame_png: Path, tmp_path: Path, severity: str) -> None:
    proc = run_cli("perturb", str(frame_png), "--name", "fog", "--severity", severity, "-o", str(tmp_path / "o.png"))
    assert_clean_error(proc, r"severity must be a number in \[0, 5\]")


def test_unreadable_image_paths(tmp_path: Path) -> None:
    missing = run_cli("perturb", str(tmp_path / "nope.png"), "--name", "fog", "-o", str(tmp_path / "o.png"))
    assert_clean_error(missing, r"image .*nope.png does not exist")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image at all" * 10)
    assert_clean_error(run_cli("perturb", str(junk), "--name", "fog", "-o", str(tmp_path / "o.png")),
                       r"cannot read .*junk.png as an image")


def test_temporal_on_one_image_and_missing_name(frame_png: Path, tmp_path: Path) -> None:
    assert_clean_error(run_cli("perturb", str(frame_png), "--name", "dropped_frame", "-o", str(tmp_path / "o.png")),
                       r"temporal and needs neighbouring frames")
    assert_clean_error(run_cli("perturb", str(frame_png), "-o", str(tmp_path / "o.png")), r"give --name")
