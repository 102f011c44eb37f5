"""JUnit XML for CI: one testcase per check, failures carry their figures.

Written with the standard library's ElementTree to the strict Jenkins JUnit
schema (junit-4.xsd, the one JUnit 5 validates against; tests/data holds a
copy and a test validates every report with xmlschema): testsuites >
testsuite > properties + testcase (skipped | error | failure, system-out,
system-err). Each case carries the time its check took, its figure rounded
with its unit, n and interval; the suite's properties carry the provenance,
the load guards and the paths of the other reports.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any


def _figure(value: Any, unit: str) -> str:
    from edgeprobe.cli.report import format_figure

    return format_figure(value, unit) if isinstance(value, (int, float)) or value is None else str(value)


def _case_text(c: dict[str, Any]) -> str:
    op = "≤" if c.get("op", "<=") == "<=" else "≥"
    unit = c.get("unit", "")
    d = c.get("details", {})
    evidence = f"; n={d['n']}" if "n" in d else ""
    if "ci_low" in d and "ci_high" in d:
        evidence += f", CI {_figure(d['ci_low'], unit)} to {_figure(d['ci_high'], unit)}"
    elif d.get("ci_low_ms") is not None and d.get("ci_high_ms") is not None:
        evidence += f", CI {d['ci_low_ms']:.2f} to {d['ci_high_ms']:.2f} ms"
    return (f"{c['name']}: {c['status']}: {_figure(c.get('figure'), unit)} (limit {op} "
            f"{_figure(c.get('limit'), unit)}{evidence}); {c.get('message', '')}")


def to_junit(result: dict[str, Any]) -> bytes:
    checks = result.get("checks", [])
    inconclusive_fails = result.get("inconclusive_counts_as", "inconclusive") != "pass"
    failures = sum(c["status"] == "fail" or (c["status"] == "inconclusive" and inconclusive_fails) for c in checks)
    errors = sum(c["status"] == "error" for c in checks)
    skipped = sum(c["status"] == "inconclusive" and not inconclusive_fails for c in checks)
    prov = result.get("provenance", {})
    total = f"{float(prov.get('duration_s', 0) or 0):.3f}"
    name = str(result.get("suite", "edgeprobe"))
    root = ET.Element("testsuites", {"name": name, "tests": str(len(checks)), "failures": str(failures),
                                     "errors": str(errors), "time": total})
    attrs = {"name": name, "tests": str(len(checks)), "failures": str(failures), "errors": str(errors),
             "skipped": str(skipped), "time": total, "timestamp": str(prov.get("started", "")),
             "hostname": str(prov.get("device", {}).get("host", ""))}
    suite = ET.SubElement(root, "testsuite", attrs)
    props = ET.SubElement(suite, "properties")

    def prop(key: str, value: Any) -> None:
        ET.SubElement(props, "property", {"name": key, "value": str(value)})

    for key in ("model_sha256", "config_sha256", "agent_version", "runtime", "task"):
        prop(key, prov.get(key, ""))
    prop("device", prov.get("device", {}).get("host", ""))
    prop("seed", prov.get("seeds", {}).get("suite", ""))
    prop("status", result.get("status", ""))
    for key, path in sorted(prov.get("outputs", {}).items()):
        prop(f"report.{key}", path)
    for key, value in sorted((prov.get("guards") or {}).items()):
        if isinstance(value, list):
            value = "; ".join(map(str, value))
        if not isinstance(value, dict):
            prop(f"guards.{key}", value)
    for i, w in enumerate(result.get("warnings", [])):
        prop(f"warning.{i}", w)
    for c in checks:
        case = ET.SubElement(suite, "testcase", {"name": c["name"], "classname": f"edgeprobe.{c['kind']}",
                                                 "time": f"{float(c.get('seconds', 0) or 0):.3f}",
                                                 "status": c["status"]})
        text = _case_text(c)
        if c["status"] == "inconclusive" and not inconclusive_fails:
            ET.SubElement(case, "skipped").text = text
        elif c["status"] == "error":
            ET.SubElement(case, "error", {"message": text, "type": "error"}).text = text
        elif c["status"] == "fail" or c["status"] == "inconclusive":
            ET.SubElement(case, "failure", {"message": text, "type": c["status"]}).text = text
        ET.SubElement(case, "system-out").text = text
    if result.get("warnings"):
        ET.SubElement(suite, "system-err").text = "\n".join(f"warning: {w}" for w in result["warnings"])
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def write_junit(path: Path, result: dict[str, Any]) -> None:
    from edgeprobe.harness.fileio import atomic_write

    data = to_junit(result)
    atomic_write(path, lambda f: f.write(data))
