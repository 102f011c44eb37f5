"""Bad input through the real CLI: one clear sentence, exit 2, no traceback."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edgeprobe.cli.localbroker import free_port
from tests.conftest import assert_clean_error, demo_config, run_cli


def command_paths() -> list[tuple[str, ...]]:
    """Every subcommand and nested subcommand, read from the app itself so a new command is covered unasked."""
    import typer

    from edgeprobe.cli import app

    def walk(cmd: Any, prefix: tuple[str, ...]) -> list[tuple[str, ...]]:
        subs = getattr(cmd, "commands", None) or {}
        found = [prefix] if prefix else []
        for name in sorted(subs):
            found += walk(subs[name], (*prefix, name))
        return found

    return walk(typer.main.get_command(app), ())


def test_command_list_is_read_from_the_app() -> None:
    """The derivation itself: top-level commands, groups and their members all appear."""
    paths = command_paths()
    for expected in [("run",), ("check",), ("fleet",), ("fleet", "status"), ("fleet", "cameras"),
                     ("baseline", "record"), ("golden", "record"), ("assets", "fetch"), ("assets", "list")]:
        assert expected in paths, paths
    assert len(paths) == len(set(paths)) >= 20


def test_version() -> None:
    proc = run_cli("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("edgeprobe ")


@pytest.mark.parametrize("path", command_paths(), ids=" ".join)
def test_help_of_every_command(path: tuple[str, ...]) -> None:
    h = run_cli(*path, "--help")
    assert h.returncode == 0, h.stderr
    assert "Usage" in h.stdout and f"edgeprobe {' '.join(path)}" in h.stdout, h.stdout
    assert h.stderr == "", h.stderr


def test_missing_model_file(tmp_path: Path, short_clip: Path, write_config: Callable[..., Path]) -> None:
    cfg = write_config(demo_config(tmp_path / "nope.onnx", short_clip, tmp_path / "s.db"))
    proc = run_cli("run", "-c", str(cfg), "--max-frames", "2")
    assert_clean_error(proc, r"model file .*nope.onnx does not exist")


def test_file_that_is_not_a_model(tmp_path: Path, short_clip: Path, write_config: Callable[..., Path]) -> None:
    bogus = tmp_path / "model.onnx"
    bogus.write_bytes(b"this is not a protobuf" * 10)
    cfg = write_config(demo_config(bogus, short_clip, tmp_path / "s.db"))
    assert_clean_error(run_cli("run", "-c", str(cfg), "--max-frames", "2"), r"is not a model ONNX Runtime can load")


def test_video_that_cannot_be_opened(
    tmp_path: Path, orientation_model: Path, write_config: Callable[..., Path]
) -> None:
    video = tmp_path / "broken.avi"
    video.write_bytes(b"\x00garbage" * 100)
    cfg = write_config(demo_config(orientation_model, video, tmp_path / "s.db"))
    proc = run_cli("run", "-c", str(cfg), "--max-frames", "2")
    assert_clean_error(proc, r"cannot open .*broken.avi as a video")


def test_yaml_syntax_error(tmp_path: Path) -> None:
    cfg = tmp_path / "agent.yaml"
    cfg.write_text("source:\n  uri: [x.avi\nmodel: {path: m.onnx}\n")
    assert_clean_error(run_cli("run", "-c", str(cfg)), r"agent.yaml line \d+: YAML syntax error")


def test_unknown_config_key(tmp_path: Path, orientation_model: Path, short_clip: Path,
                            write_config: Callable[..., Path]) -> None:
    data = demo_config(orientation_model, short_clip, tmp_path / "s.db")
    data["windows"]["frame"] = 5
    assert_clean_error(run_cli("run", "-c", str(write_config(data))),
                       r"unknown key 'windows.frame' \(did you mean \"frames\"\?\)")


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    proc = run_cli("--debug", "run", "-c", str(tmp_path / "missing.yaml"))
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_bad_broker_option(tmp_path: Path, orientation_model: Path, short_clip: Path,
                           write_config: Callable[..., Path]) -> None:
    cfg = write_config(demo_config(orientation_model, short_clip, tmp_path / "s.db"))
    assert_clean_error(run_cli("run", "-c", str(cfg), "--broker", "nohostport"), r"must be HOST:PORT")


@pytest.mark.timeout(120)
def test_unreachable_broker_keeps_measuring_and_says_so_once(
    tmp_path: Path, orientation_model: Path, short_clip: Path, write_config: Callable[..., Path]
) -> None:
    spool = tmp_path / "s.db"
    data = demo_config(orientation_model, short_clip, spool, windows={"frames": 10})
    cfg = write_config(data)
    port = free_port()  # nothing listens here
    proc = run_cli("run", "-c", str(cfg), "--broker", f"127.0.0.1:{port}", "--max-frames", "60")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("not reachable") == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    with sqlite3.connect(spool) as db:
        kinds = [k for (k,) in db.execute("SELECT topic FROM outbox")]
    # birth + 6 windows x (latency, robustness, health, drift) + death, all kept for later
    assert len(kinds) == 1 + 6 * 4 + 1
