"""The HTML report in a real headless browser (Debian's chromium): renders, plots present, no console errors."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import cv2
import pytest

from edgeprobe.agent.suite_runner import run_suite
from edgeprobe.cli.report import render_html, write_html
from edgeprobe.harness.suite import load_suite
from tests.cli.test_check import PASSING, small_suite, write_suite

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_browser = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (`make test` installs it as root)")


def chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Headless chromium with no network side traffic and a throwaway profile."""
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", f"--user-data-dir={tmp / 'profile'}", "--enable-logging=stderr", "--v=0",
         *args], capture_output=True, text=True, timeout=90, env={**os.environ, "HOME": str(tmp)})


def console_errors(stderr: str) -> list[str]:
    """Lines where the page itself logged an error or failed to load something (not chromium's own noise)."""
    return [line for line in stderr.splitlines()
            if re.search(r"CONSOLE.*(error|Uncaught)|:ERROR:CONSOLE|Failed to load resource|net::ERR_", line,
                         re.IGNORECASE)]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory, orientation_model: Path,
           short_clip: Path) -> tuple[Path, Any, Any]:
    tmp = tmp_path_factory.mktemp("report")
    # The second noise check gives the degradation plot its second curve; the impossible budget makes the
    # verdict FAIL whatever the model's robustness (the banner's red is asserted in the browser test).
    checks = [*PASSING, {"kind": "robustness", "perturbation": "gaussian_noise", "severity": 5, "max_unstable": 0.0,
                         "name": "strict noise"},
              {"kind": "latency", "stage": "inference", "budget": "p90=0.001ms", "name": "impossible budget"}]
    loaded = load_suite(write_suite(tmp / "suite.yaml", small_suite(orientation_model, short_clip, checks)))
    result, artifacts = run_suite(loaded)
    assert result["status"] == "fail", result["headline"]
    path = tmp / "report.html"
    write_html(path, result, artifacts.worst)
    return path, result, artifacts.worst


def test_report_is_self_contained(report: tuple[Path, Any, Any]) -> None:
    path, result, _ = report
    page = path.read_text()
    # Nothing fetched: no scripts, no external stylesheets, images or fonts.
    assert "<script" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page), "external reference in report"
    assert not re.search(r"url\(\s*['\"]?https?:", page)
    for check in result["checks"]:
        assert check["name"] in page
    assert page.count('id="degradation"') == 1 and page.count('id="latency"') == 1
    assert "edgeprobe perturb frame-" in page and "data:image/webp;base64," in page
    assert result["provenance"]["model_sha256"] in page


def test_render_is_deterministic_for_the_same_result(report: tuple[Path, Any, Any]) -> None:
    _, result, _ = report
    assert render_html(result) == render_html(result)


@needs_browser
def test_report_renders_in_headless_chromium(report: tuple[Path, Any, Any], tmp_path: Path) -> None:
    path, result, _ = report
    dom = chromium(tmp_path, "--dump-dom", path.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert console_errors(dom.stderr) == [], console_errors(dom.stderr)
    text = dom.stdout
    assert html.escape(result["headline"], quote=False) in text
    n_curves, n_stages = len(result["data"]["curves"]), len(result["data"]["latency"])
    assert n_curves == 2 and n_stages == 5
    # Every plot is an inline SVG inside its section, with real drawing in it.
    degradation = re.search(r'id="degradation">(.*?)</div>\s*</div>\s*<h2', text, re.S)
    assert degradation and degradation.group(1).count("<svg") == n_curves
    assert text.count("<svg") == n_curves + n_stages
    assert len(re.findall(r"<path ", text)) > 20
    shot = tmp_path / "shot.png"
    proc = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", "--hide-scrollbars", path.as_uri())
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    img = cv2.imread(str(shot))
    assert img is not None and img.shape[:2] == (2000, 1280)
    # Rendered, not blank: the FAIL banner's red and plenty of non-white pixels.
    assert (img.reshape(-1, 3) != 255).any(axis=1).mean() > 0.05
    red = (img[..., 2] > 180) & (img[..., 1] < 80) & (img[..., 0] < 80)
    assert red.sum() > 2000


@needs_browser
def test_console_error_scan_catches_a_broken_page(tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text("<html><body><img src='missing.png'><script>console.error('boom'); undefined_fn();</script>"
                    "</body></html>")
    proc = chromium(tmp_path, "--dump-dom", page.as_uri())
    assert proc.returncode == 0
    assert console_errors(proc.stderr), proc.stderr[-2000:]


def test_worst_frames_replay_to_the_same_pixels(report: tuple[Path, Any, Any]) -> None:
    """The replay command's name, severity and seed regenerate exactly the perturbed frame that was judged."""
    from edgeprobe.harness import perturbations

    _, result, worst = report
    assert worst and len(worst) == len(result["data"]["worst_frames"])
    for w in worst:
        m = re.search(r"--name (\S+) --severity (\S+) --seed (\d+)", w["replay"])
        assert m, w["replay"]
        again = perturbations.apply(m.group(1), w["clean"], float(m.group(2)), int(m.group(3)))
        assert (again == w["perturbed"]).all()
        assert w["before"]["label"] != w["after"]["label"]  # it was chosen because its top-1 flipped


def test_worst_frame_captions_say_what_each_task_predicted() -> None:
    from edgeprobe.cli.report import caption

    assert caption({"label": "90"}) == "90"
    assert caption({"count": 3, "classes": {"text": 3}, "score": 0.875}) == "3 boxes, top score 0.88"
    assert caption({"count": 0, "classes": {}, "score": 0.0}) == "0 boxes"  # not "None"
    assert caption({"foreground": 0.25, "classes": 2}) == "25% foreground, 2 classes"


def test_latency_cdfs_are_scaled_to_the_data_with_the_budget_marked() -> None:
    from edgeprobe.cli.report import cdf_axis

    ms = [2.8, 3.0, 3.1, 3.4, 4.0]
    left, right, inline = cdf_axis(ms, [5000.0])
    assert left < 2.8 and 4.0 < right < 5.0 and inline == [False]  # marked at the edge, curve not squeezed
    left, right, inline = cdf_axis(ms, [4.5])
    assert right > 4.5 and inline == [True]
    left, right, inline = cdf_axis(ms, [1.0])
    assert left <= 1.0 and inline == [True]  # a budget below the data is drawn too: everything fails it
