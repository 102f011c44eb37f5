"""The namespace mapping in pyproject.toml must list every sub-package on disk."""

from __future__ import annotations

from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[1]
ROOTS = {"edgeprobe": "edgeprobe", "harness": "edgeprobe.harness", "agent": "edgeprobe.agent",
         "collector": "edgeprobe.collector"}


def test_every_package_on_disk_is_listed_in_pyproject() -> None:
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = set()
    for folder, dotted in ROOTS.items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder).parts
            on_disk.add(".".join((dotted, *rel)))
    assert on_disk == listed


def test_harness_imports_neither_agent_nor_collector() -> None:
    offenders = [
        str(p.relative_to(REPO)) for p in (REPO / "harness").rglob("*.py")
        if any(s in p.read_text() for s in ("from ..agent", "from ...agent", "edgeprobe.agent",
                                             "from ..collector", "from ...collector", "edgeprobe.collector"))
    ]
    assert offenders == []


def test_collector_never_imports_agent() -> None:
    def imports(p: Path) -> str:
        return "".join(line for line in p.read_text().splitlines() if line.startswith(("from", "import")))

    offenders = [str(p.relative_to(REPO)) for p in (REPO / "collector").rglob("*.py") if "agent" in imports(p)]
    assert offenders == []
