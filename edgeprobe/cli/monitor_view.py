"""The end-of-run monitoring lines `edgeprobe run` prints: camera health, drift, flips, slices."""

from __future__ import annotations

from typing import Any

from edgeprobe.cli.console import console


def print_monitor(summary: dict[str, Any]) -> None:
    """Last window's camera health against its bands, the drift verdict, temporal flips and slice headlines."""
    h = summary.get("health") or {}
    bands = summary.get("bands") or {}
    if h:
        parts = []
        for metric in ("brightness", "contrast", "sharpness", "noise", "clipped", "occlusion"):
            if metric in h:
                band = bands.get(metric)
                where = f" [{band[0]:.3g}-{band[1]:.3g}]" if band else ""
                parts.append(f"{metric} {h[metric]:.3g}{where}")
        ref = summary.get("reference")
        source = {"baseline": ", bands from the baseline", "learned": ", bands learned from the first frames"}
        console.print(f"camera health (last window{source.get(ref or '', '') if bands else ''}): " + ", ".join(parts))
        alerts = h.get("alerts") or []
        console.print(f"  alerts open: {', '.join(alerts) if alerts else 'none'}"
                      + (f"; replaying {h['replaying_frames']} frames (loop of {h.get('replay_lag')})"
                         if h.get("replaying_frames") else ""))
    events = summary.get("events") or {}
    if events:
        console.print("events: " + ", ".join(f"{k} x{v}" for k, v in sorted(events.items())))
    drift = summary.get("drift")
    if drift and drift.get("attribution") is None:
        console.print(f"drift: {drift.get('message')}")
    elif drift:
        console.print(f"drift against the {summary.get('reference')} reference ({drift.get('frames')} frames): "
                      f"{drift.get('attribution')}: {drift.get('message')}")
    t = summary.get("temporal") or {}
    if t.get("counted"):
        console.print(f"temporal flips: {t['flips']} of {t['counted']} gated consecutive pairs "
                      f"({t['flip_rate']:.1%})")
    for line in (summary.get("slices") or {}).get("headlines", []):
        console.print(f"slice: {line}")
