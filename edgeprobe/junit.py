"""JUnit XML for CI: one testcase per check, failures carry their figures.

Written with the standard library's ElementTree in the common Jenkins/
junitparser dialect (testsuites > testsuite > testcase with failure/error/
skipped children), so every CI system that reads JUnit shows each check.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any


def to_junit(result: dict[str, Any]) -> bytes:
    checks = result.get("checks", [])
    inconclusive_fails = result.get("inconclusive_counts_as", "fail") == "fail"
    failures = sum(c["status"] == "fail" or (c["status"] == "inconclusive" and inconclusive_fails) for c in checks)
    errors = sum(c["status"] == "error" for c in checks)
    skipped = sum(c["status"] == "inconclusive" and not inconclusive_fails for c in checks)
    prov = result.get("provenance", {})
    attrs = {"name": result.get("suite", "edgeprobe"), "tests": str(len(checks)), "failures": str(failures),
             "errors": str(errors), "skipped": str(skipped), "time": f"{prov.get('duration_s', 0):.3f}",
             "timestamp": prov.get("started", "")}
    root = ET.Element("testsuites", {k: v for k, v in attrs.items() if k != "timestamp"})
    suite = ET.SubElement(root, "testsuite", attrs)
    props = ET.SubElement(suite, "properties")
    for key in ("model_sha256", "config_sha256", "agent_version", "runtime", "task"):
        ET.SubElement(props, "property", {"name": key, "value": str(prov.get(key, ""))})
    ET.SubElement(props, "property", {"name": "device", "value": str(prov.get("device", {}).get("host", ""))})
    ET.SubElement(props, "property", {"name": "seed", "value": str(prov.get("seeds", {}).get("suite", ""))})
    for c in checks:
        case = ET.SubElement(suite, "testcase", {"name": c["name"], "classname": f"edgeprobe.{c['kind']}",
                                                 "time": "0"})
        op = c.get("op", "<=")
        text = (f"{c['name']}: {c['status']}: figure {c.get('figure')} {c.get('unit', '')} must be {op} "
                f"{c.get('limit')}; {c.get('message', '')}")
        if c["status"] == "fail" or (c["status"] == "inconclusive" and inconclusive_fails):
            ET.SubElement(case, "failure", {"message": text, "type": c["status"]}).text = text
        elif c["status"] == "error":
            ET.SubElement(case, "error", {"message": text, "type": "error"}).text = text
        elif c["status"] == "inconclusive":
            ET.SubElement(case, "skipped", {"message": text})
        ET.SubElement(case, "system-out").text = text
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def write_junit(path: Path, result: dict[str, Any]) -> None:
    from .agent.suite_runner import atomic_write

    data = to_junit(result)
    atomic_write(path, lambda f: f.write(data))
