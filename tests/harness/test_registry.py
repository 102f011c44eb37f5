"""The one registry type: names, errors, duplicates and entry-point plugins."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from edgeprobe.harness.errors import ConfigError
from edgeprobe.harness.registry import Registry


def test_register_get_and_list() -> None:
    reg: Registry[int] = Registry("widget")
    reg.register("b", 2)
    reg.add("a")(1)
    assert reg.get("a") == 1 and reg["b"] == 2
    assert reg.names() == ["a", "b"] and list(reg) == ["a", "b"] and len(reg) == 2
    assert "a" in reg and "c" not in reg
    assert [e.origin for e in reg.entries()] == ["builtin", "builtin"]


def test_unknown_name_is_one_sentence_with_a_suggestion() -> None:
    reg: Registry[int] = Registry("widget", listing="edgeprobe widgets")
    reg.register("gaussian", 1)
    with pytest.raises(ConfigError) as err:
        reg.get("gausian")
    assert str(err.value) == "unknown widget 'gausian' (did you mean \"gaussian\"?); `edgeprobe widgets` lists them"


def test_duplicate_name_is_refused() -> None:
    reg: Registry[int] = Registry("widget")
    reg.register("a", 1)
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("a", 2)


def _fake_distribution(root: Path, group: str, lines: list[str], module: str, source: str) -> None:
    """A real installed distribution as importlib.metadata finds one: a .dist-info with entry points."""
    info = root / "fakeplug-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeplug\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{group}]\n" + "\n".join(lines) + "\n")
    (root / f"{module}.py").write_text(source)


def test_plugins_load_from_entry_points_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_distribution(tmp_path, "edgeprobe.test_widgets", ["seven = fakeplug_mod:SEVEN", "a = fakeplug_mod:SEVEN"],
                       "fakeplug_mod", "SEVEN = 7\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg: Registry[int] = Registry("widget", group="edgeprobe.test_widgets")
    reg.register("a", 1)
    assert reg.get("seven") == 7
    assert reg.entry("seven").origin == "plugin fakeplug"
    assert reg.get("a") == 1  # a plugin never shadows a built-in
    assert reg.names() == ["a", "seven"]
    sys.modules.pop("fakeplug_mod", None)


def test_a_broken_plugin_is_one_sentence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_distribution(tmp_path, "edgeprobe.test_broken", ["bad = fakeplug_broken:X"], "fakeplug_broken",
                       "raise ImportError('needs libfoo')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg: Registry[int] = Registry("widget", group="edgeprobe.test_broken")
    with pytest.raises(ConfigError, match=r"plugin 'bad' .* failed to import: needs libfoo; fix or uninstall fakeplug"):
        reg.names()
