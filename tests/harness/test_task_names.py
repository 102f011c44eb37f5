"""A misspelt task kind or layout is named with its file and line when the file is read, not at model load."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeprobe.agent.config import load_config
from edgeprobe.harness.errors import ConfigError
from edgeprobe.harness.modelconfig import TaskConfig, check_task_names
from edgeprobe.harness.suite import parse_suite
from edgeprobe.harness.tasks import ADAPTERS, layouts_of

AGENT = """\
device_id: cam
model:
  path: model.onnx
task:
  kind: {kind}
{layout}spool:
  path: spool.db
"""

SUITE = """\
name: t
model:
  path: model.onnx
source:
  uri: clip.avi
task:
  kind: {kind}
{layout}checks:
  - kind: latency
    budget: p99=30ms
"""


def _agent(tmp_path: Path, kind: str, layout: str | None = None) -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(AGENT.format(kind=kind, layout=f"  layout: {layout}\n" if layout else ""))
    return path


def test_an_unknown_task_kind_names_the_file_line_and_the_closest_kind(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"agent\.yaml line 5: task\.kind: unknown task 'classificaton' "
                                          r"\(did you mean \"classification\"\?\)"):
        load_config(_agent(tmp_path, "classificaton"))


def test_a_layout_on_a_task_without_layouts_is_refused_not_ignored(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"agent\.yaml line 6: task\.layout 'ssd_anchor' is not a layout of "
                                          r"classification; it takes none: remove the key"):
        load_config(_agent(tmp_path, "classification", "ssd_anchor"))


def test_a_misspelt_layout_in_a_suite_names_its_line_and_the_layouts(tmp_path: Path) -> None:
    text = SUITE.format(kind="detection", layout="  layout: yolov9\n")
    with pytest.raises(ConfigError, match=r"suite\.yaml line 8: task\.layout 'yolov9' is not a layout of "
                                          r"detection \(did you mean \"yolov8\"\?\); it takes one of yolov8, "):
        parse_suite(text, tmp_path / "suite.yaml")


def test_every_declared_layout_of_every_built_in_task_is_accepted(tmp_path: Path) -> None:
    checked = 0
    for entry in ADAPTERS.entries():
        if entry.origin != "builtin":
            continue
        for layout in (*layouts_of(entry.name), *getattr(entry.value, "layout_aliases", ())):
            check_task_names(TaskConfig(kind=entry.name, layout=layout), "agent.yaml", {})
            checked += 1
    assert checked >= 15  # detection's six, segmentation's, keypoints', ssd_anchors' presets, the layout-less
    load_config(_agent(tmp_path, "auto"))  # picked from the model's outputs later: nothing to check here
    load_config(_agent(tmp_path, "detection", "yolo"))  # the older spelling existing configs use
