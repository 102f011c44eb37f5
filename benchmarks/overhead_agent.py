"""The agent side of overhead.py: the real agent loop of `edgeprobe run`, timed from outside.

Imports the CLI module first (so its import cost and memory are counted as
`edgeprobe run` has them), builds the agent from an agent YAML with dotted
overrides exactly as `edgeprobe run` does, and times the measured frames after
``--skip`` through the run's own ``on_frame`` callback.

    python benchmarks/overhead_agent.py CONFIG --frames 300 --skip 20 --set probe.enabled=false ...

Prints one JSON line: wall and CPU ms per frame (the agent's process, and apart its probe process's, read
from /proc while it runs), minor page faults per frame, peak RSS (VmHWM).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("--frames", type=int, default=300, help="timed frames")
    ap.add_argument("--skip", type=int, default=20, help="untimed measured frames first")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help="dotted override")
    a = ap.parse_args()

    import edgeprobe.cli  # noqa: F401  (the CLI's own imports, as `edgeprobe run` pays them)
    from edgeprobe.agent.config import load_config
    from edgeprobe.agent.memory import peak_rss_mb
    from edgeprobe.agent.runner import Agent
    from edgeprobe.cli.assets import cache_dir

    os.environ.setdefault("EDGEPROBE_ASSETS", str(cache_dir()))
    overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in a.set)}
    agent = Agent(load_config(a.config, overrides))
    marks: dict[str, tuple[float, resource.struct_rusage, float]] = {}
    child = getattr(agent.worker, "proc", None)  # the probe process, when probes run in one

    def child_cpu_s() -> float:
        """The probe process's CPU so far (getrusage of this process does not see a child still running)."""
        if child is None:
            return 0.0
        try:
            with open(f"/proc/{child.pid}/stat", encoding="ascii") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def on_frame(n: int) -> None:
        if n == a.skip and "start" not in marks:
            marks["start"] = (time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF), child_cpu_s())
        elif n == a.skip + a.frames:
            marks["end"] = (time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF), child_cpu_s())

    stats = agent.run(max_frames=a.skip + a.frames, on_frame=on_frame)
    (t0, u0, c0), (t1, u1, c1) = marks["start"], marks["end"]
    cpu = u1.ru_utime + u1.ru_stime - u0.ru_utime - u0.ru_stime
    print(json.dumps({"ms_per_frame": (t1 - t0) * 1000 / a.frames, "cpu_ms_per_frame": cpu * 1000 / a.frames,
                      "probe_cpu_ms_per_frame": (c1 - c0) * 1000 / a.frames,
                      "minflt_per_frame": (u1.ru_minflt - u0.ru_minflt) / a.frames,
                      "peak_rss_mb": peak_rss_mb(), "probed_frames": stats.probed_frames,
                      "modules": len(sys.modules)}))


if __name__ == "__main__":
    main()
