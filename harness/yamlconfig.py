"""YAML files validated by msgspec Structs, with errors that name file, line and key.

Shared by the agent config and acceptance suites: msgspec reports the failing
path (``$.probe.every_n_frames``) and we map it back to the YAML line, so a
user reads "suite.yaml line 12: checks[0].budget: ..." rather than a traceback.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any

import msgspec
import yaml

from edgeprobe.harness.errors import ConfigError, did_you_mean

# The constrained numbers every config file (agent config, suite, model/task sections, checks) uses, defined once.
PosInt = Annotated[int, msgspec.Meta(ge=1)]
NonNegInt = Annotated[int, msgspec.Meta(ge=0)]
#: a perturbation severity on the ImageNet-C scale (0 clean .. 5 worst; fractions interpolate)
Severity = Annotated[float, msgspec.Meta(ge=0, le=5)]
#: a share or fraction
Unit = Annotated[float, msgspec.Meta(ge=0, le=1)]
#: an interval's confidence level
Confidence = Annotated[float, msgspec.Meta(gt=0, lt=1)]


def read_file(path: Path, kind: str, expected: str) -> str:
    """A ``kind`` file's text (config, suite), or one ConfigError sentence: missing (pass the path to
    ``expected``), unreadable or not UTF-8."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{kind} file {path} does not exist; pass the path to {expected}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {kind} file {path}: {exc}") from None


def parse_yaml(text: str, where: str) -> tuple[Any, dict[str, int]]:
    """YAML -> (data, {"a.b.c": line}) so errors can point at a line."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(
            f"{where}{line}: YAML syntax error: {problem}; fix the indentation or quoting there"
        ) from None
    lines: dict[str, int] = {}
    if node is not None:
        _collect_lines(node, "", lines)
    return data, lines


def _collect_lines(node: yaml.Node, prefix: str, out: dict[str, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = f"{prefix}.{key_node.value}" if prefix else str(key_node.value)
            out[key] = key_node.start_mark.line + 1
            _collect_lines(value_node, key, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            key = f"{prefix}[{i}]"
            out[key] = item.start_mark.line + 1
            _collect_lines(item, key, out)


def _struct_candidates(typ: Any) -> list[type[msgspec.Struct]]:
    """Struct types reachable from a (possibly list/union) annotation."""
    if isinstance(typ, type) and issubclass(typ, msgspec.Struct):
        return [typ]
    out: list[type[msgspec.Struct]] = []
    for arg in getattr(typ, "__args__", ()) or ():
        out.extend(_struct_candidates(arg))
    return out


def struct_at(root: type[msgspec.Struct], path: str, data: Any = None) -> type[msgspec.Struct] | None:
    """The Struct type found at a dotted path (for 'did you mean').

    For tagged unions (a list of checks of several kinds) ``data`` picks the
    member whose tag matches the value in the file.
    """
    candidates: list[type[msgspec.Struct]] = [root]
    node = data
    for part in filter(None, re.split(r"\.|\[(\d+)\]", path)):
        if part.isdigit():
            node = node[int(part)] if isinstance(node, list) and int(part) < len(node) else None
            continue
        typ = _pick(candidates, node)
        hints = {f.name: f.type for f in msgspec.structs.fields(typ)}
        node = node.get(part) if isinstance(node, dict) else None
        candidates = _struct_candidates(hints.get(part))
        if not candidates:
            return None
    return _pick(candidates, node)


def _pick(candidates: list[type[msgspec.Struct]], node: Any) -> type[msgspec.Struct]:
    if len(candidates) == 1:
        return candidates[0]
    for cand in candidates:
        cfg = cand.__struct_config__
        if cfg.tag is not None and isinstance(node, dict) and node.get(cfg.tag_field) == cfg.tag:
            return cand
    return candidates[0]


def explain(exc: msgspec.ValidationError, where: str, lines: dict[str, int],
            root: type[msgspec.Struct], data: Any = None) -> str:
    """One sentence for a msgspec validation error: file, line, key, and a hint."""
    msg = str(exc)
    m = re.search(r" - at `\$(.*)`$", msg)
    path = m.group(1).lstrip(".") if m else ""
    detail = msg[: m.start()] if m else msg
    unknown = re.match(r"Object contains unknown field `(.+)`", detail)
    missing = re.match(r"Object missing required field `(.+)`", detail)
    if unknown:
        key = unknown.group(1)
        full = f"{path}.{key}" if path else key
        struct = struct_at(root, path, data)
        hint = did_you_mean(key, [f.name for f in msgspec.structs.fields(struct)]) if struct else ""
        line = lines.get(full)
        loc = f"{where} line {line}" if line else where
        return f"{loc}: unknown key {full!r}{hint}; remove it or fix the spelling"
    if missing:
        key = missing.group(1)
        full = f"{path}.{key}" if path else key
        line = lines.get(path)
        loc = f"{where} line {line}" if line else where
        return f"{loc}: required key {full!r} is missing; add it"
    line = lines.get(path)
    loc = f"{where} line {line}" if line else where
    return f"{loc}: {path or 'config'}: {detail}"


def looks_like_url_or_device(uri: str) -> bool:
    """A source that is not a file path (URL, camera index, /dev node, GStreamer pipeline): never resolved."""
    return "://" in uri or uri.isdigit() or uri.startswith("/dev/") or "!" in uri


def resolve_path(value: str, base: Path) -> str:
    """A path from a config file, relative to that file (configs move with their models); ~ and $VARS expanded."""
    expanded = os.path.expanduser(os.path.expandvars(value))
    p = Path(expanded)
    return str(p if p.is_absolute() else (base / p).resolve())
