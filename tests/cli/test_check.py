"""`edgeprobe check / validate / init / golden / diff` through the real CLI, on the real demo model."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
import pytest
import yaml
from junitparser import Error, Failure, JUnitXml

from edgeprobe.cli.localbroker import LocalBroker
from edgeprobe.harness import schema
from tests.conftest import assert_clean_error, run_cli

PREPROCESS = {"resize": "center_crop", "color": "bgr", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def small_suite(model: Path, clip: Path, checks: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"name": "cli-test", "seed": 5, "model": {"path": str(model), "threads": 1, "preprocess": PREPROCESS},
            "source": {"uri": str(clip), "frames": 6, "stride": 8},
            # max_seconds far above what the samples take, so a loaded machine changes no sample count
            "latency": {"samples": 150, "warmup": 3, "max_seconds": 600},
            "report": {"curve_severities": [1, 3, 5], "worst_frames": 2}, "checks": checks, **extra}


PASSING = [
    {"kind": "latency", "stage": "e2e", "budget": "p90=2000ms"},
    {"kind": "robustness", "perturbation": "gaussian_noise", "severity": 1, "max_unstable": 1.0},
    {"kind": "breaking_point", "perturbation": "gaussian_blur", "min_severity": 0.0},
    {"kind": "metamorphic", "relation": "rotate90", "max_violation_rate": 1.0},
    {"kind": "health", "metric": "sharpness", "min": 1},
]
FAILING = [
    {"kind": "latency", "stage": "inference", "budget": "p90=0.001ms"},
    {"kind": "health", "metric": "sharpness", "max": 1, "name": "too sharp"},
    {"kind": "robustness", "perturbation": "pixel_dropout", "severity": 1, "max_unstable": 1.0},
]


def assert_valid_junit(path: Path) -> None:
    """The strict Jenkins JUnit schema (tests/data/jenkins-junit.xsd): what Jenkins and JUnit 5 accept."""
    import xmlschema

    xmlschema.XMLSchema(str(Path(__file__).resolve().parents[1] / "data" / "jenkins-junit.xsd")).validate(str(path))


def write_suite(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def passing_run(tmp_path_factory: pytest.TempPathFactory, orientation_model: Path,
                short_clip: Path) -> tuple[Any, Path]:
    tmp = tmp_path_factory.mktemp("check")
    suite = write_suite(tmp / "suite.yaml", small_suite(orientation_model, short_clip, PASSING))
    proc = run_cli("check", str(suite), "--json", "--junit", str(tmp / "junit.xml"), "--html", str(tmp / "r.html"))
    return proc, tmp


def test_check_all_pass_writes_json_junit_html(passing_run: tuple[Any, Path], orientation_model: Path) -> None:
    proc, tmp = passing_run
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["status"] == "pass" and result["exit_code"] == 0
    assert [c["status"] for c in result["checks"]] == ["pass"] * len(PASSING)
    prov = result["provenance"]
    from edgeprobe.agent.backends import sha256_file

    assert prov["model_sha256"] == sha256_file(orientation_model)
    assert len(prov["config_sha256"]) == 64 and prov["agent_version"] and prov["device"]["host"] is not None
    assert prov["seeds"]["suite"] == 5 and len(prov["source"]["frames"]) == 6
    for c in result["checks"]:
        assert c["figure"] is not None and c["limit"] is not None, c
    assert set(result["data"]["curves"]) == {"gaussian_noise", "gaussian_blur"}
    assert result["data"]["latency"]["e2e"]["n"] >= 35
    xml = JUnitXml.fromfile(str(tmp / "junit.xml"))
    cases = [case for suite in xml for case in suite]
    assert len(cases) == len(PASSING) and all(case.is_passed for case in cases)
    assert_valid_junit(tmp / "junit.xml")
    props = {p.name: p.value for suite in xml for p in suite.properties()}
    assert props["report.html"] == str(tmp / "r.html") and props["status"] == "pass"
    html = (tmp / "r.html").read_text()
    assert html.count("<svg") >= 3 and "<script" not in html
    assert not [f for f in tmp.iterdir() if f.name.endswith(".tmp")]


def test_check_failure_exit_1_and_junit_carries_figures(tmp_path: Path, orientation_model: Path,
                                                        short_clip: Path) -> None:
    suite = write_suite(tmp_path / "suite.yaml", small_suite(orientation_model, short_clip, FAILING))
    proc = run_cli("check", str(suite), "--junit", str(tmp_path / "j.xml"), env={"COLUMNS": "160"})
    assert proc.returncode == 1, proc.stderr
    assert_valid_junit(tmp_path / "j.xml")
    assert re.search(r"too sharp\s.*≤ 1\s.*FAIL", proc.stdout), proc.stdout
    assert "FAIL: 2 of 3 checks not passed" in proc.stdout
    cases = {case.name: case for suite in JUnitXml.fromfile(str(tmp_path / "j.xml")) for case in suite}
    assert cases["pixel_dropout @ severity 1"].is_passed
    failure = cases["too sharp"].result[0]
    assert isinstance(failure, Failure)
    # rounded figure with its unit, the limit, and the evidence it rests on
    assert re.search(r"too sharp: fail: \d+(\.\d+)? \(limit ≤ 1; n=6\)", failure.message or ""), failure.message
    assert float(cases["latency inference p90"].time) > 0 and float(cases["too sharp"].time) >= 0
    assert isinstance(cases["latency inference p90"].result[0], (Failure, Error))


@pytest.mark.parametrize(("policy", "code"), [("fail", 1), ("pass", 0), ("inconclusive", 3)])
def test_inconclusive_counts_as_fail_unless_the_suite_says_otherwise(
        tmp_path: Path, orientation_model: Path, short_clip: Path, policy: str, code: int) -> None:
    # 40 runs cannot bound a p99 at 95% confidence: the verdict must be inconclusive, never a lucky pass.
    data = small_suite(orientation_model, short_clip, [{"kind": "latency", "budget": "p99=5000ms"}],
                       inconclusive=policy)
    data["latency"]["samples"] = 40
    proc = run_cli("check", str(write_suite(tmp_path / "s.yaml", data)), "--json")
    assert proc.returncode == code, proc.stderr
    result = json.loads(proc.stdout)
    assert result["checks"][0]["status"] == "inconclusive" and result["checks"][0]["details"]["n"] == 40


def test_verdict_is_published_to_the_broker(tmp_path: Path, orientation_model: Path, short_clip: Path,
                                            broker: LocalBroker) -> None:
    got: list[tuple[str, bytes]] = []
    arrived = threading.Event()
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="verdict-test")
    subscribed = threading.Event()
    sub.on_message = lambda c, u, m: (got.append((m.topic, m.payload)), arrived.set())
    sub.on_subscribe = lambda *_: subscribed.set()
    sub.connect("127.0.0.1", broker.port)
    sub.subscribe("edgeprobe/v1/+/+/verdict", qos=1)
    sub.loop_start()
    try:
        assert subscribed.wait(10)
        data = small_suite(orientation_model, short_clip, [PASSING[4]],
                           broker={"fleet": "lab", "device_id": "board-7"})
        proc = run_cli("check", str(write_suite(tmp_path / "s.yaml", data)), "--broker", broker.address,
                       env={"EDGEPROBE_VERDICT_SPOOL": str(tmp_path / "spool.db")})
        assert proc.returncode == 0, proc.stderr
        assert arrived.wait(10), "no verdict message arrived"
    finally:
        sub.loop_stop()
        sub.disconnect()
    topic, payload = got[0]
    env, _ = schema.decode_message(payload, topic)
    assert topic == "edgeprobe/v1/lab/board-7/verdict"
    assert env.body["status"] == "pass" and env.body["checks"][0]["name"] == "health sharpness"


def test_unreachable_broker_keeps_the_verdict_in_the_spool(tmp_path: Path, orientation_model: Path,
                                                           short_clip: Path) -> None:
    import sqlite3

    from edgeprobe.cli.localbroker import free_port

    spool = tmp_path / "spool.db"
    data = small_suite(orientation_model, short_clip, [PASSING[4]])
    proc = run_cli("check", str(write_suite(tmp_path / "s.yaml", data)), "--broker", f"127.0.0.1:{free_port()}",
                   env={"EDGEPROBE_VERDICT_SPOOL": str(spool)})
    assert proc.returncode == 0, proc.stderr  # the verdict is the suite's, not the network's
    assert "did not acknowledge the verdict; it stays in" in proc.stderr and "Traceback" not in proc.stderr
    with sqlite3.connect(spool) as db:
        topics = [t for (t,) in db.execute("SELECT topic FROM outbox")]
    assert len(topics) == 1 and topics[0].endswith("/verdict")


# --- bad input -------------------------------------------------------------------------


def test_missing_model(tmp_path: Path, short_clip: Path) -> None:
    suite = write_suite(tmp_path / "s.yaml", small_suite(tmp_path / "gone.onnx", short_clip, PASSING))
    assert_clean_error(run_cli("check", str(suite)), r"model file .*gone.onnx does not exist")
    assert_clean_error(run_cli("validate", str(suite)), r"s.yaml line 4: model file .*gone.onnx does not exist")


def test_unknown_perturbation_and_bad_budget(tmp_path: Path, orientation_model: Path, short_clip: Path) -> None:
    bad = [{"kind": "robustness", "perturbation": "motion_blurr"}]
    suite = write_suite(tmp_path / "s.yaml", small_suite(orientation_model, short_clip, bad))
    assert_clean_error(run_cli("check", str(suite)), r"unknown perturbation 'motion_blurr'")
    suite = write_suite(tmp_path / "s.yaml", small_suite(orientation_model, short_clip,
                                                         [{"kind": "latency", "budget": "p99 under 30"}]))
    assert_clean_error(run_cli("check", str(suite)), r"latency budget 'p99 under 30' does not parse")


def test_unwritable_report_path_fails_before_measuring(tmp_path: Path, orientation_model: Path,
                                                       short_clip: Path) -> None:
    suite = write_suite(tmp_path / "s.yaml", small_suite(orientation_model, short_clip, PASSING))
    assert_clean_error(run_cli("check", str(suite), "--html", str(tmp_path / "no" / "such" / "r.html")),
                       r"cannot write .*r.html: folder .* does not exist")
    assert_clean_error(run_cli("check", str(suite), "--junit", str(tmp_path)),
                       r"--junit .* is a folder; name a file in it, e\.g\. .*junit\.xml")
    assert_clean_error(run_cli("check", str(suite), "--html", str(suite / "r.html")),
                       r"s\.yaml is a file, not a folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]


def test_binary_suite_and_broker_port_out_of_range_fail_before_measuring(tmp_path: Path, orientation_model: Path,
                                                                         short_clip: Path) -> None:
    binary = tmp_path / "model-not-suite.onnx"
    binary.write_bytes(orientation_model.read_bytes()[:4096])
    assert_clean_error(run_cli("check", str(binary)), r"suite file .* is not a text YAML file")
    suite = write_suite(tmp_path / "s.yaml", small_suite(orientation_model, short_clip, PASSING))
    proc = run_cli("check", str(suite), "--broker", "127.0.0.1:99999", timeout=30)
    assert_clean_error(proc, r"--broker port 99999 is out of range")


def test_golden_record_check_and_hash_mismatch(tmp_path: Path, orientation_model: Path, short_clip: Path) -> None:
    data = small_suite(orientation_model, short_clip, [{"kind": "golden", "file": "ref.npz"}])
    suite = write_suite(tmp_path / "s.yaml", data)
    assert_clean_error(run_cli("validate", str(suite)), r"golden file .*ref.npz does not exist; record it")
    rec = run_cli("golden", "record", str(suite), "-o", str(tmp_path / "ref.npz"))
    assert rec.returncode == 0, rec.stderr
    ok = run_cli("check", str(suite), "--json")
    assert ok.returncode == 0, ok.stderr
    check = json.loads(ok.stdout)["checks"][0]
    assert check["figure"] == 1.0 and check["details"]["max_abs_output_diff"] == 0.0
    with np.load(tmp_path / "ref.npz") as z:
        arrays = {k: z[k] for k in z.files}
    # A reference whose first frame has another top-1 class: the task-aware comparison must see one differing frame.
    flipped = dict(arrays)
    flipped["f0_o0"] = np.roll(arrays["f0_o0"], 1, axis=-1)
    np.savez(tmp_path / "ref.npz", **flipped)
    bad = run_cli("check", str(suite), "--json")
    assert bad.returncode == 1, bad.stderr
    check = json.loads(bad.stdout)["checks"][0]
    assert check["status"] == "fail" and check["figure"] == pytest.approx(5 / 6)
    assert check["details"]["differ"] == [0] and check["details"]["max_abs_output_diff"] > 0
    # The same file, claiming to come from another model.
    meta = json.loads(arrays["meta"].tobytes())
    meta["model_sha256"] = "ab" * 32
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(tmp_path / "other.npz", **arrays)
    data["checks"] = [{"kind": "golden", "file": "other.npz"}]
    write_suite(suite, data)
    assert_clean_error(run_cli("check", str(suite)), r"golden file .*other.npz was recorded from another model")
    # ... unless the suite says so on purpose (a converted model compared to its reference).
    data["checks"][0]["reference_sha256"] = "ab" * 32
    write_suite(suite, data)
    assert run_cli("check", str(suite)).returncode == 0


# --- validate, init, diff ----------------------------------------------------------------


def test_validate_and_init(tmp_path: Path, orientation_model: Path, short_clip: Path) -> None:
    out = tmp_path / "starter.yaml"
    proc = run_cli("init", str(orientation_model), "-o", str(out), "--source", str(short_clip))
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert "x [None, 3, 224, 224] float32 NCHW" in text and "kind: classification" in text and "# " in text
    assert text.count("confidence: 0.95") >= 5  # every statistical check states the confidence it is judged at
    v = run_cli("validate", str(out))
    assert v.returncode == 0 and "valid suite" in v.stdout, v.stderr
    assert_clean_error(run_cli("init", str(orientation_model), "-o", str(out)), r"already exists; pass --force")


def _result(figures: dict[str, tuple[str, float, str]]) -> dict[str, Any]:
    return {"checks": [{"name": n, "status": s, "figure": f, "limit": 10.0, "unit": "ms", "op": op}
                       for n, (s, f, op) in ((n, (v[0], v[1], v[2])) for n, v in figures.items())]}


def test_diff_reports_regressions(tmp_path: Path) -> None:
    old = {"lat": ("pass", 5.0, "<="), "bp": ("pass", 3.0, ">="), "rob": ("pass", 1.0, "<=")}
    new = {"lat": ("pass", 6.0, "<="), "bp": ("pass", 3.1, ">="), "rob": ("pass", 1.01, "<=")}
    (tmp_path / "a.json").write_text(json.dumps(_result(old)))
    (tmp_path / "b.json").write_text(json.dumps(_result(new)))
    proc = run_cli("diff", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--json")
    assert proc.returncode == 1, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)["checks"]}
    assert rows["lat"]["regression"] and rows["lat"]["change"] == pytest.approx(0.2)
    assert not rows["bp"]["regression"] and not rows["rob"]["regression"]
    assert run_cli("diff", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--tolerance", "0.25").returncode == 0
    assert_clean_error(run_cli("diff", str(tmp_path / "a.json"), str(tmp_path / "nope.json")),
                       r"result file .*nope.json does not exist")


def test_check_on_a_detector_writes_junit_and_html(tmp_path: Path, short_clip: Path) -> None:
    """The shipped detector suite's settings on a shortened frame set, through the real CLI."""
    from tests.conftest import asset

    data = yaml.safe_load((Path(__file__).resolve().parents[2] / "examples" / "detector-suite.yaml").read_text())
    data["model"]["path"] = str(asset("ddddocr_det.onnx"))
    data["source"] = {"uri": str(short_clip), "frames": 3, "stride": 20}
    data["latency"] = {"samples": 32, "warmup": 2}
    data["report"] = {"curve_severities": [2], "worst_frames": 1}
    data["checks"] = [{"kind": "latency", "stage": "inference", "budget": "p50=5s"},
                      {"kind": "robustness", "perturbation": "gaussian_noise", "severity": 2, "max_unstable": 1.0}]
    suite = write_suite(tmp_path / "det.yaml", data)
    proc = run_cli("check", str(suite), "--json", "--junit", str(tmp_path / "j.xml"),
                   "--html", str(tmp_path / "r.html"))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["provenance"]["task"] in ("detection", "tensor")
    assert [c["status"] for c in result["checks"]] in (["pass", "pass"], ["pass", "inconclusive"])
    # frames where the detector found nothing are counted apart, never as stable
    rob = result["checks"][1]["details"]
    assert rob["n"] + rob["nothing_to_lose"] == 3 and 0 <= rob["gained_a_prediction"] <= rob["nothing_to_lose"]
    assert len([case for s in JUnitXml.fromfile(str(tmp_path / "j.xml")) for case in s]) == 2
    assert (tmp_path / "r.html").read_text().count("<svg") == 1 + 5


def test_a_frame_set_shorter_than_asked_is_a_warning_everywhere_and_an_error_with_strict(
        tmp_path: Path, orientation_model: Path, short_clip: Path) -> None:
    data = small_suite(orientation_model, short_clip, [{"kind": "health", "metric": "sharpness", "min": 1}])
    data["source"]["frames"] = 100  # the 60-frame clip at stride 8 gives 8
    suite = write_suite(tmp_path / "s.yaml", data)
    proc = run_cli("check", str(suite), "--junit", str(tmp_path / "j.xml"), "--html", str(tmp_path / "r.html"),
                   env={"COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr
    sentence = "gave 8 of the 100 frames asked"
    assert f"warning: source {short_clip} {sentence}" in proc.stdout.replace("\n", " ")
    assert sentence in (tmp_path / "r.html").read_text()
    assert_valid_junit(tmp_path / "j.xml")
    props = {p.name: p.value for s in JUnitXml.fromfile(str(tmp_path / "j.xml")) for p in s.properties()}
    assert sentence in props["warning.0"]
    result = json.loads(run_cli("check", str(suite), "--json").stdout)
    assert len(result["warnings"]) == 1 and sentence in result["warnings"][0]
    assert result["checks"][0]["details"]["n"] == 8
    assert_clean_error(run_cli("check", str(suite), "--strict"), sentence + r".*lower source.frames")


def test_a_missing_report_extra_is_found_before_measuring(tmp_path: Path, orientation_model: Path,
                                                          short_clip: Path) -> None:
    shadow = tmp_path / "shadow" / "matplotlib"
    shadow.mkdir(parents=True)  # an importable name that fails to import, as an absent package does
    (shadow / "__init__.py").write_text("raise ImportError('No module named matplotlib')\n")
    suite = write_suite(tmp_path / "s.yaml", small_suite(orientation_model, short_clip, PASSING))
    proc = run_cli("check", str(suite), "--html", str(tmp_path / "r.html"), env={"PYTHONPATH": str(shadow.parent)})
    assert_clean_error(proc, r"the HTML report \(--html\) needs matplotlib.*pip install 'edgeprobe\[report\]'")
    assert "timing" not in proc.stdout and not (tmp_path / "r.html").exists()


@pytest.mark.parametrize("command", [["check"], ["diff"], ["run"], ["golden", "record"], ["bench"]])
def test_every_help_lists_the_exit_codes(command: list[str]) -> None:
    out = " ".join(run_cli(*command, "--help", env={"COLUMNS": "200"}).stdout.split())
    assert "Exit codes: 0 pass, 1 a check failed, 2 usage or configuration error, 3 inconclusive" in out
    assert "4 internal error" in out


def _share_result(k: int, n: int) -> dict[str, Any]:
    from edgeprobe.harness.stability import wilson_interval

    lo, hi = wilson_interval(k, n)
    return {"checks": [{"name": "rob", "kind": "robustness", "status": "pass", "figure": k / n, "limit": 0.6,
                        "unit": "unstable share", "op": "<=", "details": {"n": n, "ci_low": lo, "ci_high": hi}}]}


@pytest.mark.parametrize(("k_new", "regression"), [(2, False), (12, True)])
def test_diff_flags_only_changes_beyond_both_tolerance_and_intervals(tmp_path: Path, k_new: int,
                                                                     regression: bool) -> None:
    # 1 of 24 -> 2 of 24 is "+100%" but inside both Wilson intervals; 1 -> 12 of 24 is beyond them.
    (tmp_path / "a.json").write_text(json.dumps(_share_result(1, 24)))
    (tmp_path / "b.json").write_text(json.dumps(_share_result(k_new, 24)))
    proc = run_cli("diff", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--json")
    (row,) = json.loads(proc.stdout)["checks"]
    assert row["change"] > 0.1 and row["regression"] is regression and proc.returncode == int(regression)
    if not regression:
        assert row["note"] == "within the two runs' intervals"


def test_a_latency_sign_off_under_load_says_so_and_decides_nothing_with_strict(
        tmp_path: Path, orientation_model: Path, short_clip: Path) -> None:
    import subprocess
    import sys

    # p99 needs 368+ timed runs: long enough for the guards to see the busy loop's core
    data = small_suite(orientation_model, short_clip, [{"kind": "latency", "stage": "e2e", "budget": "p99=10s"}])
    data["latency"]["samples"] = 600
    suite = write_suite(tmp_path / "s.yaml", data)
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        proc = run_cli("check", str(suite), "--json", "--junit", str(tmp_path / "j.xml"))
        strict = run_cli("check", str(suite), "--json", "--strict")
    finally:
        hog.kill()
        hog.wait()
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    guards = result["provenance"]["guards"]
    assert guards["other_cpu_cores"] > 0.25 and any("other processes used" in f for f in guards["flags"])
    (check,) = result["checks"]
    assert check["status"] == "pass" and "taken under load (other processes used" in check["message"]
    props = {p.name: p.value for s in JUnitXml.fromfile(str(tmp_path / "j.xml")) for p in s.properties()}
    assert float(props["guards.other_cpu_cores"]) > 0.25 and "other processes used" in props["guards.flags"]
    assert_valid_junit(tmp_path / "j.xml")
    assert strict.returncode == 3, strict.stderr
    (check,) = json.loads(strict.stdout)["checks"]
    assert check["status"] == "inconclusive" and check["details"]["status_without_load"] == "pass"
