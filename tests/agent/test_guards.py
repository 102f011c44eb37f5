"""Measurement-validity guards from a fake sysfs/procfs tree, and from the real one."""

from __future__ import annotations

import os
from pathlib import Path

from edgeprobe.agent.guards import GuardMonitor, Guards, summarize


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


def _board(root: Path, governor: str = "performance", freq: int = 1_500_000, temp: int = 45_000,
           cooling: int = 0, busy: int = 1000, steal: int = 0) -> None:
    for cpu in range(4):
        base = f"sys/devices/system/cpu/cpu{cpu}/cpufreq"
        _write(root, f"{base}/scaling_governor", governor)
        _write(root, f"{base}/scaling_cur_freq", str(freq))
        _write(root, f"{base}/cpuinfo_max_freq", "1500000")
    _write(root, "sys/class/thermal/thermal_zone0/type", "cpu-thermal")
    _write(root, "sys/class/thermal/thermal_zone0/temp", str(temp))
    _write(root, "sys/class/thermal/thermal_zone0/trip_point_0_type", "passive")
    _write(root, "sys/class/thermal/thermal_zone0/trip_point_0_temp", "80000")
    _write(root, "sys/class/thermal/thermal_zone0/trip_point_1_type", "critical")
    _write(root, "sys/class/thermal/thermal_zone0/trip_point_1_temp", "105000")
    _write(root, "sys/class/thermal/cooling_device0/type", "cpufreq-cpu0")
    _write(root, "sys/class/thermal/cooling_device0/cur_state", str(cooling))
    _write(root, "sys/class/thermal/cooling_device1/type", "pwm-fan")
    _write(root, "sys/class/thermal/cooling_device1/cur_state", "3")  # a fan is not throttling
    _write(root, "proc/loadavg", "0.50 0.40 0.30 1/200 1234")
    _write(root, "proc/stat", f"cpu  {busy} 0 0 100000 0 0 0 {steal} 0 0\ncpu0 1 0 0 1 0 0 0 0 0 0")


def test_a_quiet_board_at_performance_is_clean(tmp_path: Path) -> None:
    _board(tmp_path)
    snap = Guards(tmp_path).snapshot()
    assert snap.governors == {f"cpu{i}": "performance" for i in range(4)}
    assert snap.freq_khz["cpu0"] == 1_500_000 and snap.temps_c == {"cpu-thermal:0": 45.0}
    assert snap.trip_c == {"cpu-thermal:0": 80.0} and snap.cooling == {"cpufreq-cpu0:0": 0}
    assert snap.load_1m == 0.5 and snap.power_mode is None
    rep = summarize([snap, Guards(tmp_path).snapshot()])
    assert not rep.throttled and rep.governors == ["performance"] and rep.max_temp_c == 45.0
    assert rep.freq_mhz_min == rep.freq_mhz_max == 1500.0
    assert not [f for f in rep.flags if "throttled" in f or "governor" in f]


def test_powersave_governor_is_flagged(tmp_path: Path) -> None:
    _board(tmp_path, governor="powersave")
    rep = summarize([Guards(tmp_path).snapshot()])
    assert any("governor powersave" in f and "performance" in f for f in rep.flags)


def test_throttling_during_the_run_is_seen_four_ways(tmp_path: Path) -> None:
    g = Guards(tmp_path)
    _board(tmp_path)
    before = g.snapshot()
    _board(tmp_path, cooling=2)  # the thermal framework capped cpufreq
    assert summarize([before, g.snapshot()]).throttled
    _board(tmp_path, temp=82_000)  # reached the passive trip point
    rep = summarize([before, g.snapshot()])
    assert rep.throttled and rep.max_temp_c == 82.0 and any("trip point" in f for f in rep.flags)
    _board(tmp_path, freq=1_000_000)  # clock fell under the performance governor
    rep = summarize([before, g.snapshot()])
    assert rep.throttled and any("frequency fell from 1500 to 1000 MHz" in f for f in rep.flags)
    _board(tmp_path)
    _write(tmp_path, "sys/devices/system/cpu/cpu0/thermal_throttle/core_throttle_count", "5")
    b2 = g.snapshot()
    _write(tmp_path, "sys/devices/system/cpu/cpu0/thermal_throttle/core_throttle_count", "9")
    rep = summarize([b2, g.snapshot()])
    assert rep.throttled and any("4 thermal throttle event(s)" in f for f in rep.flags)


def test_raspberry_pi_firmware_bits(tmp_path: Path) -> None:
    _board(tmp_path)
    _write(tmp_path, "sys/devices/platform/soc/soc:firmware/get_throttled", "0x50000")  # happened before, not now
    assert not summarize([Guards(tmp_path).snapshot()]).throttled
    _write(tmp_path, "sys/devices/platform/soc/soc:firmware/get_throttled", "0x50004")
    assert summarize([Guards(tmp_path).snapshot()]).throttled


def test_jetson_power_mode_is_named(tmp_path: Path) -> None:
    _board(tmp_path)
    _write(tmp_path, "var/lib/nvpmodel/status", "pmode:0002")
    _write(tmp_path, "etc/nvpmodel.conf", "< POWER_MODEL ID=0 NAME=MAXN >\nCPU_ONLINE CORE_0 1\n"
                                          "< POWER_MODEL ID=2 NAME=15W >\n")
    assert Guards(tmp_path).snapshot().power_mode == "2 (15W)"


def test_other_processes_and_steal_time_are_counted(tmp_path: Path) -> None:
    g = Guards(tmp_path)
    _board(tmp_path, busy=1000, steal=0)
    a = g.snapshot()
    _board(tmp_path, busy=1000 + 200 * 10, steal=100 * 10)  # in clock ticks
    b = g.snapshot()
    ticks = os.sysconf("SC_CLK_TCK")
    b.t_mono = a.t_mono + 10.0
    b.own_cpu_s = a.own_cpu_s  # pretend this process was idle
    rep = summarize([a, b])
    assert rep.other_cpu_cores is not None and abs(rep.other_cpu_cores - 2000 / ticks / 10) < 1e-6
    assert rep.steal_cores is not None and abs(rep.steal_cores - 1000 / ticks / 10) < 1e-6
    assert any("other processes used" in f for f in rep.flags)
    assert any("hypervisor stole" in f for f in rep.flags)


def test_an_empty_tree_reports_nothing_and_does_not_fail(tmp_path: Path) -> None:
    rep = summarize([Guards(tmp_path).snapshot()])
    assert rep.governors == [] and rep.max_temp_c is None and not rep.throttled
    assert rep.flags == ["cpu frequency unknown (no cpufreq in sysfs)"]


def test_the_real_sysfs_and_procfs() -> None:
    """Integration: whatever this machine exposes is read and agrees with what is on disk."""
    monitor = GuardMonitor(Guards("/"), every_s=0.0)
    monitor.start()
    sum(i * i for i in range(200_000))
    monitor.poll()
    rep = monitor.report()
    snap = monitor.guards.snapshot()
    cpufreq = sorted(Path("/sys/devices/system/cpu").glob("cpu[0-9]*/cpufreq/scaling_governor"))
    assert len(snap.governors) == len(cpufreq)
    if cpufreq:
        assert rep.governors and set(rep.governors) <= {p.read_text().strip() for p in cpufreq}
    else:
        assert "cpu frequency unknown (no cpufreq in sysfs)" in rep.flags
    zones = list(Path("/sys/class/thermal").glob("thermal_zone*/temp"))
    assert (rep.max_temp_c is not None) == bool(snap.temps_c) and len(snap.temps_c) <= len(zones)
    assert snap.load_1m is not None and snap.load_1m >= 0
    assert rep.other_cpu_cores is not None and rep.other_cpu_cores >= 0 and rep.snapshots >= 3
