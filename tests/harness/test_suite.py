"""Suite schema, validation messages and verdict arithmetic."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeprobe.harness.errors import ConfigError
from edgeprobe.harness.suite import (
    CheckResult,
    GoldenCheck,
    LatencyCheck,
    RobustnessCheck,
    check_name,
    decide,
    exit_code,
    headline,
    load_suite,
    north_star,
    parse_budget_text,
)

GOOD = """\
name: t
model:
  path: model.onnx
source:
  uri: clip.avi
  frames: 4
checks:
  - kind: latency
    budget: p99=30ms
  - kind: robustness
    perturbation: gaussian_noise
    severity: 2
  - kind: golden
    file: ref.npz
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "suite.yaml"
    p.write_text(text)
    return p


def test_valid_suite_resolves_paths_and_defaults(tmp_path: Path) -> None:
    loaded = load_suite(write(tmp_path, GOOD))
    s = loaded.suite
    assert s.model.path == str(tmp_path / "model.onnx")
    assert s.source.uri == str(tmp_path / "clip.avi")
    assert [type(c) for c in s.checks] == [LatencyCheck, RobustnessCheck, GoldenCheck]
    assert isinstance(s.checks[2], GoldenCheck) and s.checks[2].file == str(tmp_path / "ref.npz")
    assert s.inconclusive == "inconclusive" and len(loaded.sha256) == 64
    assert [check_name(c) for c in s.checks] == ["latency e2e p99", "gaussian_noise @ severity 2", "golden ref.npz"]


def test_config_hash_changes_with_content(tmp_path: Path) -> None:
    a = load_suite(write(tmp_path, GOOD)).sha256
    b = load_suite(write(tmp_path, GOOD.replace("p99=30ms", "p99=31ms"))).sha256
    assert a != b


@pytest.mark.parametrize(("text", "pattern"), [
    (GOOD.replace("  frames: 4", "  frame: 4"),
     r"suite.yaml line 6: unknown key 'source.frame' \(did you mean \"frames\"\?\)"),
    (GOOD.replace("    severity: 2", "    severty: 2"),
     r"line 12: unknown key 'checks\[1\].severty' \(did you mean \"severity\"\?\)"),
    (GOOD.replace("kind: robustness", "kind: robustnes"), r"line 10: checks\[1\].kind 'robustnes' is not a check "
                                                          r"\(did you mean \"robustness\"\?\)"),
    (GOOD.replace("p99=30ms", "fast please"), r"line 9: latency budget 'fast please' does not parse.*p99=30ms"),
    (GOOD.replace("gaussian_noise", "gausian_noise"), r"line 11: unknown perturbation 'gausian_noise' "
                                                      r"\(did you mean \"gaussian_noise\"\?\)"),
    (GOOD.replace("name: t\n", ""), r"required key 'name' is missing"),
    (GOOD.replace("  uri: clip.avi", "  uri: [clip.avi"), r"line \d+: YAML syntax error"),
    (GOOD.replace("severity: 2", "severity: 9"), r"line 12: checks\[1\].severity: Expected `float` <= 5"),
    (GOOD + "  - kind: metamorphic\n    relation: rotate45\n",
     r"line 16: unknown metamorphic relation 'rotate45' \(did you mean \"rotate90\"\?\)"),
    (GOOD + "  - kind: metamorphic\n    relation: rotate90\n    params: {clockwise: true}\n",
     r"line 16: relation rotate90 has no parameter 'clockwise' \(did you mean \"clockwise_labels\"\?\)"),
])
def test_bad_suites_name_line_and_key(tmp_path: Path, text: str, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        load_suite(write(tmp_path, text))


def test_missing_suite_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"suite file .* does not exist"):
        load_suite(tmp_path / "nope.yaml")


def test_budget_text() -> None:
    assert parse_budget_text("p99=30ms") == (99.0, 30.0)
    assert parse_budget_text("p95 < 2s") == (95.0, 2000.0)
    with pytest.raises(ConfigError):
        parse_budget_text("p99 = fast")


statuses = st.sampled_from(["pass", "fail", "error", "inconclusive"])


def _result(status: str) -> CheckResult:
    return CheckResult(name=f"c-{status}", kind="latency", status=status, figure=1.0, limit=2.0)  # type: ignore[arg-type]


@given(st.lists(statuses, min_size=1, max_size=12), st.sampled_from(["fail", "pass", "inconclusive"]))
def test_north_star_is_the_worst_verdict(sts: list[str], policy: str) -> None:
    verdict = north_star([_result(s) for s in sts], policy)
    if "error" in sts:
        assert verdict == "error"
    elif "fail" in sts:
        assert verdict == "fail"
    elif "inconclusive" in sts:
        assert verdict == policy
    else:
        assert verdict == "pass"
    # 0 pass, 1 a check failed, 3 inconclusive, 4 a check crashed (2 is bad input, raised before any verdict)
    assert exit_code(verdict) == {"pass": 0, "fail": 1, "inconclusive": 3, "error": 4}[verdict]
    assert headline([_result(s) for s in sts], verdict).startswith(verdict.upper())


@given(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6), st.floats(0, 1e3), st.floats(0, 1e3))
def test_decide_with_an_interval_never_contradicts_its_bounds(fig: float, limit: float, dlo: float,
                                                              dhi: float) -> None:
    lo, hi = fig - dlo, fig + dhi
    upper = decide(fig, limit, "<=", lo, hi)
    assert upper == ("pass" if hi <= limit else "fail" if lo > limit else "inconclusive")
    lower = decide(fig, limit, ">=", lo, hi)
    assert lower == ("pass" if lo >= limit else "fail" if hi < limit else "inconclusive")
    assert decide(fig, limit, "<=") == ("pass" if fig <= limit else "fail")


def test_every_check_kind_is_one_catalogue_record() -> None:
    """The schema's union, the kind names and the catalogue agree: a kind is registered once, in one place."""
    import typing

    from edgeprobe.harness import checks

    union = set(typing.get_args(checks.Check))
    assert {checks.KINDS.get(n).config for n in checks.names()} == union
    assert all(c.__struct_config__.tag in checks.names() for c in union)
    from edgeprobe.agent.suite_runner import EVIDENCE

    assert set(EVIDENCE) == set(checks.names())  # the agent measures evidence for every kind, and for no other


@pytest.mark.parametrize(("k", "n", "empty", "status"), [(0, 0, 6, "inconclusive"), (0, 30, 6, "pass")])
def test_frames_with_nothing_to_lose_are_counted_apart(k: int, n: int, empty: int, status: str) -> None:
    from edgeprobe.harness import checks

    check = checks.RobustnessCheck(perturbation="gaussian_noise", max_unstable=0.2)
    r = checks.evaluate(check, checks.Counts(k, n, {"nothing_to_lose": empty, "gained_a_prediction": 2}))
    assert r.status == status and r.details["nothing_to_lose"] == empty
    assert f"{empty} frames had nothing to lose (no clean prediction), 2 of them gained one" in r.message


@pytest.mark.parametrize(("k", "n", "decide", "status"), [
    (1, 7, "interval", "inconclusive"),  # 14% of 7 frames: the 95% interval 3-51% straddles a 20% limit
    (1, 7, "point", "pass"),             # ... unless the suite asks for the point estimate
    (0, 40, "interval", "pass"),          # 0-9%: surely below 20%
    (20, 40, "interval", "fail"),         # 35-65%: surely above
])
def test_a_share_straddling_its_limit_is_inconclusive(k: int, n: int, decide: str, status: str) -> None:
    from edgeprobe.harness import checks

    check = checks.RobustnessCheck(perturbation="gaussian_noise", max_unstable=0.2, decide=decide)  # type: ignore[arg-type]
    r = checks.evaluate(check, checks.Counts(k, n))
    assert r.status == status and r.details["n"] == n and r.details["ci_low"] <= r.figure <= r.details["ci_high"]
    assert f"{k} of {n} frames" in r.message and "CI" in r.message


def test_only_latency_verdicts_under_load_are_marked_and_strict_makes_them_inconclusive() -> None:
    from edgeprobe.harness.checks import mark_under_load

    flags = ["other processes used 1.50 CPU cores during the run"]
    quiet = mark_under_load(_result("pass"), [], strict=True)
    assert quiet.status == "pass" and "under_load" not in quiet.details
    loaded = mark_under_load(_result("fail"), flags)
    assert loaded.status == "fail" and loaded.details["under_load"] == flags and "taken under load" in loaded.message
    strict = mark_under_load(_result("pass"), flags, strict=True)
    assert strict.status == "inconclusive" and strict.details["status_without_load"] == "pass"
    other = CheckResult(name="r", kind="robustness", status="pass", figure=0.1, limit=0.2)
    assert mark_under_load(other, flags, strict=True).status == "pass"


def test_empty_detections_and_masks_have_nothing_to_lose() -> None:
    from edgeprobe.agent.suite_probes import nothing_to_lose

    assert nothing_to_lose({"count": 0, "classes": {}, "score": 0.0})
    assert nothing_to_lose({"foreground": 0.0, "classes": 1})
    assert not nothing_to_lose({"count": 2, "classes": {"text": 2}, "score": 0.9})
    assert not nothing_to_lose({"label": "90"}) and not nothing_to_lose({"foreground": 0.3, "classes": 2})
