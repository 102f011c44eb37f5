"""Checks on what a user types on the command line, shared by the subcommands.

Each check raises :class:`ConfigError` with one sentence that names the thing
and what to do, before anything slow starts (a broker, a model session, a
measurement): a typo should cost a second, not a minute of measuring first.
"""

from __future__ import annotations

import os
from pathlib import Path

from edgeprobe.harness.errors import ConfigError

#: The first 16 bytes of every SQLite 3 database file.
SQLITE_HEADER = b"SQLite format 3\x00"


def existing_file(path: Path, what: str, hint: str) -> Path:
    """``path`` if it is a readable file; otherwise one sentence: ``{what} {path} ...; {hint}``."""
    if path.is_dir():
        raise ConfigError(f"{what} {path} is a folder, not a file; {hint}")
    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist; {hint}")
    if not os.access(path, os.R_OK):
        raise ConfigError(f"{what} {path} is not readable (permissions); {hint}")
    return path


def output_file(path: Path, option: str, example: str) -> Path:
    """Refuse an output path that cannot be written, before any work is done.

    A missing parent folder is refused rather than created: a typo in the
    folder name should not silently scatter files around the disk.
    """
    if path.is_dir():
        raise ConfigError(f"{option} {path} is a folder; name a file in it, e.g. {path / example}")
    parent = path.parent
    if parent.exists() and not parent.is_dir():
        raise ConfigError(f"cannot write {path}: {parent} is a file, not a folder; pick another {option}")
    if not parent.is_dir():
        raise ConfigError(f"cannot write {path}: folder {parent} does not exist; create it or pick another {option}")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ConfigError(f"cannot write {path}: permission denied; pick another {option}")
    return path


def output_folder(path: Path, option: str) -> Path:
    """Create ``path`` (and parents) as a folder, or say in one sentence why it cannot be."""
    for p in (path, *path.parents):
        if p.exists() and not p.is_dir():
            where = f"{option} {path} is a file" if p == path else f"{option} {path}: {p} is a file"
            raise ConfigError(f"{where}, not a folder; pick another {option}")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create folder {path} ({exc.strerror or exc}); pick another {option}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"folder {path} is not writable; pick another {option}")
    return path


def host_port(text: str, option: str = "--broker") -> tuple[str, int]:
    """``HOST:PORT`` as (host, port), the port within 1..65535."""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"{option} {text!r} must be HOST:PORT, e.g. 127.0.0.1:1883")
    return host, tcp_port(int(port), f"{option} port")


def tcp_port(port: int, option: str) -> int:
    """A TCP port number a socket can bind or connect to."""
    if not 1 <= port <= 65535:
        raise ConfigError(f"{option} {port} is out of range; give a TCP port between 1 and 65535")
    return port


def sqlite_file(path: Path, what: str, hint: str) -> Path:
    """Refuse an existing file that is not SQLite (a typo'd path onto a video, a folder) before opening it.

    An empty file is accepted: SQLite makes a fresh database of it.
    """
    if path.is_dir():
        raise ConfigError(f"{what} {path} is a folder, not a database file; {hint}")
    if path.is_file():
        try:
            with open(path, "rb") as f:
                head = f.read(len(SQLITE_HEADER))
        except OSError as exc:
            raise ConfigError(f"cannot read {what} {path} ({exc.strerror or exc}); {hint}") from None
        if head and head != SQLITE_HEADER:
            raise ConfigError(f"{what} {path} is not an SQLite database; {hint}")
    return path


def yaml_file(path: Path, what: str, hint: str) -> Path:
    """An existing text file, so a binary passed as config is named as such rather than by a codec's complaint."""
    existing_file(path, what, hint)
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path} ({exc.strerror or exc}); {hint}") from None
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not merely a multi-byte character cut at the end of the sample
            raise ConfigError(f"{what} {path} is not a text YAML file (binary data at byte {exc.start}); "
                              f"{hint}") from None
    return path


def require_extra(module: str, extra: str, what: str) -> None:
    """ConfigError naming the pip extra when an optional dependency is not installed (checked before work)."""
    import importlib

    try:
        importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"{what} needs {module}, which is not installed; install the extra: "
                          f"pip install 'edgeprobe[{extra}]'") from None


def parse_input_size(text: str) -> list[int]:
    """``640x480`` (height x width) -> ``[640, 480]``; one sentence otherwise."""
    parts = text.lower().replace(",", "x").split("x")
    try:
        h, w = (int(p) for p in parts)
    except ValueError:
        raise ConfigError(f"--input-size {text!r} is not HxW; write it like 640x640 (height x width)") from None
    if h <= 0 or w <= 0:
        raise ConfigError(f"--input-size {text!r} needs a positive height and width, e.g. 640x640")
    return [h, w]
