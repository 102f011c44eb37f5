"""Measurement-validity guards: was the board in a state where latency figures mean anything?

A p99 taken while the CPU governor scaled the clock, the SoC throttled at a
thermal trip point, or another process ate a core is a figure about those
conditions, not about the model. The guards read them from procfs/sysfs
(every path is below ``root`` so tests can point it at a fake tree) and
say so next to every figure:

- CPU governor and current/max frequency per CPU (cpufreq),
- thermal zones (temperature and passive trip points) and cooling devices
  (a CPU cooling device with ``cur_state > 0`` caps the clock: throttling),
- x86 throttle counters (``thermal_throttle/*_throttle_count``) and the
  Raspberry Pi firmware's ``get_throttled`` bits,
- Jetson power mode (nvpmodel's status file and its mode names),
- load from other processes: CPU time of the whole machine minus this
  process, and hypervisor steal time, from ``/proc/stat``.

Missing files are normal (a VM has no cpufreq, a desktop has no nvpmodel):
they leave the figure out rather than fail.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: a CPU frequency this far below its first reading under the performance governor counts as a drop
FREQ_DROP = 0.10
#: other processes using more than this many cores during a run distort it
OTHER_LOAD_CORES = 0.25


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None


def _read_int(path: Path) -> int | None:
    text = _read(path)
    if text is None:
        return None
    try:
        return int(text.split()[0], 0)
    except (ValueError, IndexError):
        return None


@dataclass
class GuardSnapshot:
    """One reading of the board's state."""

    t_mono: float
    governors: dict[str, str] = field(default_factory=dict)
    freq_khz: dict[str, int] = field(default_factory=dict)
    max_freq_khz: dict[str, int] = field(default_factory=dict)
    temps_c: dict[str, float] = field(default_factory=dict)
    #: the lowest passive (or hot) trip point per zone, the temperature at which the kernel starts throttling
    trip_c: dict[str, float] = field(default_factory=dict)
    cooling: dict[str, int] = field(default_factory=dict)
    throttle_count: int | None = None
    rpi_throttled: int | None = None
    load_1m: float | None = None
    power_mode: str | None = None
    #: /proc/stat totals (seconds) and this process's CPU time at the same moment
    busy_s: float | None = None
    steal_s: float | None = None
    own_cpu_s: float = 0.0


class Guards:
    """Reads the board state below ``root`` (``/`` on a real board, a fake tree in tests)."""

    def __init__(self, root: str | Path = "/"):
        self.root = Path(root)
        self.sys = self.root / "sys"
        self.proc = self.root / "proc"
        self._ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    # --- readers ----------------------------------------------------------

    def _cpus(self) -> list[Path]:
        base = self.sys / "devices/system/cpu"
        cpus = [p for p in base.glob("cpu[0-9]*") if p.name[3:].isdigit()]
        return sorted(cpus, key=lambda p: int(p.name[3:]))

    def _cpufreq(self, snap: GuardSnapshot) -> None:
        for cpu in self._cpus():
            freq = cpu / "cpufreq"
            gov = _read(freq / "scaling_governor")
            if gov:
                snap.governors[cpu.name] = gov
            cur = _read_int(freq / "scaling_cur_freq") or _read_int(freq / "cpuinfo_cur_freq")
            if cur:
                snap.freq_khz[cpu.name] = cur
            mx = _read_int(freq / "cpuinfo_max_freq")
            if mx:
                snap.max_freq_khz[cpu.name] = mx
            count = _read_int(cpu / "thermal_throttle/core_throttle_count")
            if count is not None:
                snap.throttle_count = (snap.throttle_count or 0) + count

    def _thermal(self, snap: GuardSnapshot) -> None:
        base = self.sys / "class/thermal"
        for zone in sorted(base.glob("thermal_zone*")):
            milli = _read_int(zone / "temp")
            if milli is None:
                continue
            name = f"{_read(zone / 'type') or 'zone'}:{zone.name[len('thermal_zone'):]}"
            snap.temps_c[name] = milli / 1000.0
            trips = []
            for kind_file in zone.glob("trip_point_*_type"):
                if _read(kind_file) in ("passive", "hot"):
                    t = _read_int(kind_file.with_name(kind_file.name.replace("_type", "_temp")))
                    if t and t > 0:
                        trips.append(t / 1000.0)
            if trips:
                snap.trip_c[name] = min(trips)
        for dev in sorted(base.glob("cooling_device*")):
            kind = _read(dev / "type") or ""
            state = _read_int(dev / "cur_state")
            # Only devices that cap the CPU clock: a fan spinning up is not throttling.
            if state is not None and re.search(r"cpu|processor|cpufreq", kind, re.IGNORECASE):
                snap.cooling[f"{kind}:{dev.name[len('cooling_device'):]}"] = state

    def _rpi(self, snap: GuardSnapshot) -> None:
        snap.rpi_throttled = _read_int(self.sys / "devices/platform/soc/soc:firmware/get_throttled")

    def _nvpmodel(self, snap: GuardSnapshot) -> None:
        status = _read(self.root / "var/lib/nvpmodel/status")
        if not status:
            return
        m = re.search(r"pmode:\s*0*(\d+)", status)
        if not m:
            snap.power_mode = status[:64]
            return
        mode = m[1]
        names = {}
        conf = _read(self.root / "etc/nvpmodel.conf") or ""
        for mid, name in re.findall(r"<\s*POWER_MODEL\s+ID\s*=\s*(\d+)\s+NAME\s*=\s*([^\s>]+)\s*>", conf):
            names[mid] = name
        snap.power_mode = f"{mode} ({names[mode]})" if mode in names else mode

    def _proc(self, snap: GuardSnapshot) -> None:
        load = _read(self.proc / "loadavg")
        if load:
            with contextlib.suppress(ValueError, IndexError):
                snap.load_1m = float(load.split()[0])
        stat = _read(self.proc / "stat")
        if stat and stat.startswith("cpu "):
            vals = [int(v) for v in stat.splitlines()[0].split()[1:]]
            # user nice system idle iowait irq softirq steal [guest guest_nice: already in user/nice]
            busy = sum(vals[:8]) - vals[3] - (vals[4] if len(vals) > 4 else 0) - (vals[7] if len(vals) > 7 else 0)
            snap.busy_s = busy / self._ticks
            snap.steal_s = (vals[7] if len(vals) > 7 else 0) / self._ticks
        use = resource.getrusage(resource.RUSAGE_SELF)
        snap.own_cpu_s = use.ru_utime + use.ru_stime

    def snapshot(self) -> GuardSnapshot:
        snap = GuardSnapshot(t_mono=time.monotonic())
        self._cpufreq(snap)
        self._thermal(snap)
        self._rpi(snap)
        self._nvpmodel(snap)
        self._proc(snap)
        return snap


@dataclass
class GuardReport:
    """What the guards saw over a run or window, and the warnings a reader needs."""

    governors: list[str] = field(default_factory=list)
    freq_mhz_min: float | None = None
    freq_mhz_max: float | None = None
    max_temp_c: float | None = None
    throttled: bool = False
    load_1m: float | None = None
    other_cpu_cores: float | None = None
    steal_cores: float | None = None
    power_mode: str | None = None
    flags: list[str] = field(default_factory=list)
    snapshots: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class GuardMonitor:
    """Takes snapshots during a run (cheap: a few small file reads) and summarises them."""

    def __init__(self, guards: Guards | None = None, every_s: float = 1.0):
        self.guards = guards or Guards()
        self.every_s = every_s
        self.snaps: list[GuardSnapshot] = []

    def start(self) -> None:
        self.snaps = [self.guards.snapshot()]

    def poll(self) -> None:
        """Snapshot if ``every_s`` has passed since the last one; call it between frames."""
        if not self.snaps:
            self.start()
        elif time.monotonic() - self.snaps[-1].t_mono >= self.every_s:
            self.snaps.append(self.guards.snapshot())

    def report(self, restart: bool = False) -> GuardReport:
        """Summarise since ``start``; with ``restart`` the next report covers only what follows."""
        if not self.snaps:
            self.start()
        self.snaps.append(self.guards.snapshot())
        rep = summarize(self.snaps)
        if restart:
            self.snaps = [self.snaps[-1]]
        return rep


def load_flags(report: GuardReport) -> list[str]:
    """The flags that say a latency figure was taken under load or throttling (not merely an unknown governor)."""
    return [f for f in report.flags if f.startswith(("throttled", "other processes", "the hypervisor"))]


def summarize(snaps: list[GuardSnapshot]) -> GuardReport:
    first, last = snaps[0], snaps[-1]
    rep = GuardReport(snapshots=len(snaps), power_mode=last.power_mode, load_1m=first.load_1m)
    rep.governors = sorted({g for s in snaps for g in s.governors.values()})
    freqs = [f for s in snaps for f in s.freq_khz.values()]
    if freqs:
        rep.freq_mhz_min, rep.freq_mhz_max = min(freqs) / 1000.0, max(freqs) / 1000.0
    temps = [t for s in snaps for t in s.temps_c.values()]
    if temps:
        rep.max_temp_c = max(temps)
    flags = rep.flags
    slow = [g for g in rep.governors if g != "performance"]
    if slow:
        flags.append(f"cpu governor {'/'.join(slow)} (not performance): frequency scaling adds jitter; "
                     "for stable figures set the performance governor")
    elif not rep.governors:
        flags.append("cpu frequency unknown (no cpufreq in sysfs)")
    reasons: list[str] = []
    if first.throttle_count is not None and last.throttle_count is not None and \
            last.throttle_count > first.throttle_count:
        reasons.append(f"{last.throttle_count - first.throttle_count} thermal throttle event(s)")
    if any((s.rpi_throttled or 0) & 0x4 for s in snaps):  # bit 2: currently throttled
        reasons.append("firmware reports throttling")
    capped = {k for s in snaps for k, v in s.cooling.items() if v > 0}
    if capped:
        reasons.append(f"cooling device {', '.join(sorted(capped))} capped the clock")
    hot = {z for s in snaps for z, t in s.temps_c.items() if z in s.trip_c and t >= s.trip_c[z]}
    if hot:
        reasons.append(f"{', '.join(sorted(hot))} at its passive trip point")
    if rep.governors == ["performance"] and len(snaps) > 1:
        for cpu, f0 in first.freq_khz.items():
            lows = [s.freq_khz[cpu] for s in snaps[1:] if cpu in s.freq_khz]
            if lows and min(lows) < (1.0 - FREQ_DROP) * f0:
                reasons.append(f"{cpu} frequency fell from {f0 / 1000:.0f} to {min(lows) / 1000:.0f} MHz")
                break
    if reasons:
        rep.throttled = True
        flags.append("throttled during the run: " + "; ".join(reasons))
    wall = last.t_mono - first.t_mono
    if wall > 0 and first.busy_s is not None and last.busy_s is not None:
        other = (last.busy_s - first.busy_s) - (last.own_cpu_s - first.own_cpu_s)
        rep.other_cpu_cores = max(0.0, other / wall)
        rep.steal_cores = max(0.0, ((last.steal_s or 0.0) - (first.steal_s or 0.0)) / wall)
        if rep.other_cpu_cores > OTHER_LOAD_CORES:
            flags.append(f"other processes used {rep.other_cpu_cores:.2f} CPU cores during the run")
        if rep.steal_cores > OTHER_LOAD_CORES:
            flags.append(f"the hypervisor stole {rep.steal_cores:.2f} CPU cores during the run (shared VM)")
    return rep
