"""The package tree every tool sees: edgeprobe/ links the design card's top-level folders, and the
import rules between the parts hold for every import in the tree, relative ones included."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PARTS = ("agent", "harness", "collector")
# What each part may import from edgeprobe.* (the root module itself only carries the version).
ALLOWED = {
    "harness": {"harness"},
    "agent": {"harness", "agent"},
    "collector": {"harness", "collector"},
    "cli": {"harness", "agent", "collector", "cli"},
}


@pytest.mark.parametrize("part", PARTS)
def test_each_top_level_folder_is_linked_into_the_namespace(part: str) -> None:
    link = REPO / "edgeprobe" / part
    assert link.is_symlink(), f"edgeprobe/{part} must be a symlink to ../{part}"
    assert os.readlink(link) == f"../{part}", "a relative link, so every checkout and sdist resolves it"
    assert link.resolve() == (REPO / part).resolve()


def _module_name(path: Path, root: Path = REPO) -> tuple[str, bool]:
    """Dotted name of a source file under edgeprobe/ (through the links) and whether it is a package."""
    rel = path.relative_to(root / "edgeprobe")
    parts = ["edgeprobe", *rel.parts[:-1]]
    if rel.name != "__init__.py":
        parts.append(rel.stem)
    return ".".join(parts), rel.name == "__init__.py"


def _imported_modules(path: Path, root: Path = REPO) -> list[tuple[int, str]]:
    """Every module a file imports, relative imports resolved the way Python resolves them."""
    name, is_package = _module_name(path, root)
    package = name.split(".") if is_package else name.split(".")[:-1]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            # `from edgeprobe import agent` imports a part as well
            found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
    return found


def _part_of(module: str) -> str | None:
    bits = module.split(".")
    if bits[0] != "edgeprobe" or len(bits) < 2:
        return None
    return bits[1] if bits[1] in (*PARTS, "cli") else None


def _sources(root: Path = REPO) -> list[Path]:
    """Every source file of the namespace, reached through the links as the interpreter reaches them."""
    found = []
    for folder, _dirs, files in os.walk(root / "edgeprobe", followlinks=True):
        if "__pycache__" not in folder:
            found += [Path(folder) / f for f in files if f.endswith(".py")]
    return sorted(found)


def test_the_tree_has_sources_in_every_part() -> None:
    parts = {_part_of(_module_name(p)[0]) for p in _sources()}
    assert parts >= {*PARTS, "cli"}


def test_imports_follow_the_rules() -> None:
    """harness imports no other part; agent and collector never import each other; nothing imports the CLI."""
    offenders = []
    for path in _sources():
        own = _part_of(_module_name(path)[0])
        if own is None:
            continue
        for line, module in _imported_modules(path):
            target = _part_of(module)
            if target is not None and target not in ALLOWED[own]:
                offenders.append(f"{path.relative_to(REPO)}:{line} ({own}) imports {module}")
    assert offenders == []


def test_no_relative_imports_remain() -> None:
    """Absolute imports only, so a reader (and every tool) sees which part a name comes from."""
    relative = [
        f"{p.relative_to(REPO)}:{node.lineno}"
        for p in _sources()
        for node in ast.walk(ast.parse(p.read_text()))
        if isinstance(node, ast.ImportFrom) and node.level
    ]
    assert relative == []


def test_the_rule_checker_sees_a_violation(tmp_path: Path) -> None:
    """The checker itself can fail: a relative import from harness into agent resolves to the agent."""
    fake = tmp_path / "edgeprobe" / "harness" / "tasks" / "x.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("from ...agent import runner\nfrom .. import errors\n")
    modules = {m for _, m in _imported_modules(fake, tmp_path)}
    assert {"edgeprobe.agent", "edgeprobe.agent.runner", "edgeprobe.harness.errors"} <= modules
    assert _part_of("edgeprobe.agent.runner") not in ALLOWED["harness"]
