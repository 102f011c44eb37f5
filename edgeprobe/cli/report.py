"""The HTML report of a suite run: one self-contained file a person can read.

Plots are matplotlib SVG inlined in the page (the `report` extra). We chose
SVG over plotly because plotly must inline its JavaScript bundle (over 3 MB) into
every report to work offline; the SVG plots of a typical suite weigh a few
tens of KB, need no script at all (nothing to fail in a locked-down browser),
and print. Images are data URIs; nothing is fetched from the network.
"""

from __future__ import annotations

import html
import io
from typing import Any

from edgeprobe.harness.errors import ConfigError
from edgeprobe.harness.stability import BROKEN_THRESHOLD, RISK_THRESHOLD

_COLORS = {"pass": "#1a7f37", "fail": "#cf222e", "error": "#8250df", "inconclusive": "#bf8700"}

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1f2328;background:#f6f8fa}
main{max-width:1180px;margin:0 auto;padding:20px 28px 60px;background:#fff}
h1{font-size:22px;margin:4px 0} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
.verdict{font-size:20px;font-weight:700;padding:10px 14px;border-radius:6px;color:#fff;display:inline-block}
table{border-collapse:collapse;width:100%;font-size:13px} td,th{border-bottom:1px solid #eaeef2;padding:4px 8px;
text-align:left;vertical-align:top} th{background:#f6f8fa} td.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{font-weight:700;padding:1px 6px;border-radius:4px;color:#fff;font-size:12px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:12px}
.plot svg{width:100%;height:auto} .muted{color:#656d76} code{background:#f6f8fa;padding:1px 4px;border-radius:3px;
font-size:12px;word-break:break-all} .frames{display:grid;grid-template-columns:repeat(auto-fill,minmax(270px,1fr));
gap:12px} .frame{border:1px solid #d0d7de;border-radius:6px;padding:8px} .frame img{width:49%}
"""


_SHARES = ("unstable share", "violation rate", "share")


def format_figure(value: float | None, unit: str) -> str:
    """Shares as percentages, times in ms, severities plain: what a person reads fastest."""
    if value is None:
        return "—"
    if unit in _SHARES:
        return f"{value:.1%}"
    if unit == "ms":
        return f"{value:.2f} ms"
    if unit == "severity":
        return f"sev {value:.2f}"
    return f"{value:.4g}"


def caption(description: dict[str, Any]) -> str:
    """What a prediction was, for a worst-frame caption: a label, a box count and top score, a mask's share."""
    if description.get("label") is not None:
        return str(description["label"])
    if "count" in description:
        n = int(description["count"])
        return f"{n} box{'es' if n != 1 else ''}" + (f", top score {float(description['score']):.2f}" if n else "")
    if "foreground" in description:
        return f"{float(description['foreground']):.0%} foreground, {description.get('classes', '?')} classes"
    return ", ".join(f"{k} {v}" for k, v in description.items()) or "?"


def _plot_grid(grid_id: str, title: str, note: str, plots: list[str]) -> list[str]:
    """A report section of SVG plots in a grid; nothing when there is nothing to plot."""
    if not plots:
        return []
    return [f"<h2>{title}</h2><p class=muted>{note}</p>",
            f'<div class="grid" id="{grid_id}">' + "".join(f'<div class="plot">{p}</div>' for p in plots) + "</div>"]


def _badge(status: str) -> str:
    return f'<span class="badge" style="background:{_COLORS.get(status, "#555")}">{html.escape(status.upper())}</span>'


def _svg(fig: Any) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _plt() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ConfigError("the HTML report needs matplotlib; install the extra: pip install 'edgeprobe[report]'") \
            from None
    matplotlib.use("svg")
    matplotlib.rcParams.update({"svg.fonttype": "none", "font.size": 9, "axes.spines.top": False,
                                "axes.spines.right": False, "svg.hashsalt": "edgeprobe"})
    import matplotlib.pyplot as plt

    return plt


def degradation_plots(result: dict[str, Any]) -> list[str]:
    """Unstable share vs severity per perturbation, with risk-zone bands and the breaking point."""
    plt = _plt()
    data = result.get("data", {})
    limits = {c["details"].get("perturbation"): c for c in result.get("checks", [])
              if c["kind"] == "robustness"}
    out = []
    for name, points in sorted(data.get("curves", {}).items()):
        fig, ax = plt.subplots(figsize=(4.6, 2.8))
        ax.axhspan(0, RISK_THRESHOLD, color="#dafbe1", lw=0)
        ax.axhspan(RISK_THRESHOLD, BROKEN_THRESHOLD, color="#fff8c5", lw=0)
        ax.axhspan(BROKEN_THRESHOLD, 1.0, color="#ffebe9", lw=0)
        sev = [p["severity"] for p in points]
        frac = [p["fraction"] for p in points]
        ax.fill_between(sev, [p["ci_low"] for p in points], [p["ci_high"] for p in points], color="#0969da",
                        alpha=0.15, lw=0, label="Wilson 95% CI")
        ax.plot(sev, frac, "o-", color="#0969da", lw=1.6, ms=4, label="unstable share")
        bp = data.get("breaking_points", {}).get(name)
        if bp and not bp.get("holds"):
            # the bracket, never a single line: from the last severity that held to the first surely broken one
            hi = bp["surely"] if bp.get("surely") is not None else 5.0
            ax.axvspan(bp["low"], hi, color="#cf222e", alpha=0.12, lw=0,
                       label=f"breaking point {bp['low']:.2f}-" + (f"{bp['surely']:.2f}" if bp.get("surely")
                                                                    is not None else ">5"))
        lim = limits.get(name)
        if lim is not None:
            ax.plot([lim["details"]["severity"]], [lim["limit"]], "v", color="#8250df", ms=7,
                    label=f"limit {lim['limit']:g} @ sev {lim['details']['severity']:g}")
        ax.set_xlim(0, 5.1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("severity")
        ax.set_ylabel("unstable share")
        ax.set_title(name, fontsize=10)
        ax.text(5.05, RISK_THRESHOLD / 2, "ok", ha="right", va="center", fontsize=7, color="#1a7f37")
        ax.text(5.05, (RISK_THRESHOLD + BROKEN_THRESHOLD) / 2, "at risk", ha="right", va="center", fontsize=7,
                color="#9a6700")
        ax.text(5.05, 0.75, "broken", ha="right", va="center", fontsize=7, color="#cf222e")
        ax.legend(fontsize=7, loc="upper left", frameon=False)
        out.append(_svg(fig))
    return out


def cdf_axis(ms: list[float], budgets_ms: list[float]) -> tuple[float, float, list[bool]]:
    """(left, right, drawn inline per budget) of a latency CDF's x axis.

    Scaled to the data so the curve's shape stays readable; a budget close to the data widens the axis to
    show it, one far beyond (a 5 s budget on a 3 ms stage) is marked at the edge with its value instead of
    squeezing the curve into a vertical line.
    """
    lo_ms, hi_ms = (min(ms), max(ms)) if ms else (0.0, 1.0)
    span = max(hi_ms - lo_ms, 1e-3)
    left, right = max(0.0, lo_ms - 0.08 * span), hi_ms + 0.08 * span
    inline = [b <= hi_ms + 0.6 * span for b in budgets_ms]
    for b, drawn in zip(budgets_ms, inline, strict=True):
        if drawn:
            right = max(right, b + 0.04 * span)
            left = min(left, max(0.0, b - 0.04 * span))
    return left, right, inline


def latency_plots(result: dict[str, Any]) -> list[str]:
    """Empirical CDF per stage with each budget drawn where it applies."""
    plt = _plt()
    data = result.get("data", {})
    budgets = data.get("latency_budgets", [])
    out = []
    for stage, cdf in data.get("latency", {}).items():
        fig, ax = plt.subplots(figsize=(4.6, 2.6))
        ax.plot(cdf["ms"], [q * 100 for q in cdf["quantiles"]], color="#0969da", lw=1.6)
        mine = [b for b in budgets if b["stage"] == stage]
        left, right, inline = cdf_axis(cdf["ms"], [b["budget_ms"] for b in mine])
        for b, drawn in zip(mine, inline, strict=True):
            label = f"budget p{b['percentile']:g} ≤ {b['budget_ms']:g} ms"
            ax.axhline(b["percentile"], color="#cf222e", ls=":", lw=0.8)
            if drawn:
                ax.axvline(b["budget_ms"], color="#cf222e", ls="--", lw=1.2, label=label)
            else:
                ax.annotate(f"{label} →", xy=(1.0, b["percentile"] / 101), xycoords="axes fraction",
                            ha="right", va="bottom", fontsize=7, color="#cf222e")
        ax.set_xlim(left, right)
        ax.set_ylim(0, 101)
        ax.set_xlabel("ms")
        ax.set_ylabel("percentile")
        ax.set_title(f"{stage}  (n={cdf['n']}, p50 {cdf['p50']:.2f} ms, p99 {cdf['p99']:.2f} ms)", fontsize=10)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="lower right", frameon=False)
        out.append(_svg(fig))
    return out


def render_html(result: dict[str, Any], worst: list[dict[str, Any]] | None = None) -> str:
    """The whole report as one HTML string (``worst`` carries the frames' pixels)."""
    from edgeprobe.harness.fileio import encode_image

    status = result.get("status", "error")
    prov = result.get("provenance", {})
    data = result.get("data", {})
    parts = [f"<!doctype html><html lang=en><head><meta charset=utf-8><title>edgeprobe: "
             f"{html.escape(result.get('suite', ''))}</title><style>{_CSS}</style></head><body><main>",
             f"<p class=muted>edgeprobe acceptance suite · {html.escape(prov.get('started', ''))}</p>",
             f"<h1>{html.escape(result.get('suite', ''))}</h1>",
             f"<p>{html.escape(result.get('description', ''))}</p>",
             f'<div id=verdict class=verdict style="background:{_COLORS.get(status, "#555")}">'
             f"{html.escape(result.get('headline', status))}</div>",
             *(f"<p id=warnings class=warning><b>warning:</b> {html.escape(w)}</p>"
               for w in result.get("warnings", [])),
             "<h2>Checks</h2><table id=checks><tr><th>check</th><th>verdict</th><th>figure</th><th>limit</th>"
             "<th>what was measured</th></tr>"]
    for c in result.get("checks", []):
        op = "≤" if c.get("op") == "<=" else "≥"
        unit = c.get("unit", "")
        lim = f"{op} {html.escape(format_figure(c['limit'], unit))}" if c.get("limit") is not None else "—"
        parts.append(f"<tr><td>{html.escape(c['name'])}</td><td>{_badge(c['status'])}</td>"
                     f"<td class=num>{html.escape(format_figure(c.get('figure'), unit))}</td><td class=num>{lim}</td>"
                     f"<td>{html.escape(c.get('message', ''))}</td></tr>")
    parts.append("</table>")
    parts += _plot_grid("degradation", "Degradation under perturbation", "Share of frames whose prediction "
                        "changes, by severity (ImageNet-C scale). Bands: ok &lt; 20%, at risk &lt; 50%, broken.",
                        degradation_plots(result))
    parts += _plot_grid("latency", "Latency per stage", "Empirical CDF of the timed runs (warm-up excluded); "
                        "dashed: the budget.", latency_plots(result))
    meta = data.get("metamorphic", [])
    if meta:
        parts.append("<h2>Metamorphic relations</h2><table id=metamorphic><tr><th>relation</th><th>expects</th>"
                     "<th>violations</th><th>rate</th><th>limit</th></tr>")
        for m in meta:
            parts.append(f"<tr><td>{html.escape(m['relation'])}</td><td>{html.escape(m['expect'])}</td>"
                         f"<td class=num>{m['violations']} / {m['n']}</td><td class=num>{m['rate']:.1%}</td>"
                         f"<td class=num>≤ {m['limit']:.0%}</td></tr>")
        parts.append("</table>")
    slices = data.get("slices", [])
    if slices:
        worst_slice = max(slices, key=lambda s: s["unstable_share"])
        parts.append("<h2>Slices</h2>")
        # a headline only when the slice is surely worse than the rest: its interval above the overall share
        if worst_slice["unstable_share"] > 0 and worst_slice.get("ci_low", 0.0) > worst_slice["overall"]:
            parts.append(f"<p>Most fragile in the <b>{html.escape(worst_slice['slice'])}</b> of frames by brightness "
                         f"({worst_slice['unstable_share']:.0%} of {worst_slice.get('probes', '?')} probes on "
                         f"{worst_slice['frames']} frames unstable, CI {worst_slice.get('ci_low', 0):.0%}-"
                         f"{worst_slice.get('ci_high', 1):.0%}, vs {worst_slice['overall']:.0%} overall).</p>")
        parts.append("<table id=slices><tr><th>brightness slice</th><th>frames</th><th>mean brightness</th>"
                     "<th>unstable share of probes</th><th>95% CI</th></tr>")
        for s in slices:
            parts.append(f"<tr><td>{html.escape(s['slice'])}</td><td class=num>{s['frames']}</td>"
                         f"<td class=num>{s['brightness_min']:.0f}–{s['brightness_max']:.0f}</td>"
                         f"<td class=num>{s['unstable_share']:.0%}</td>"
                         f"<td class=num>{s.get('ci_low', 0):.0%}–{s.get('ci_high', 1):.0%}</td></tr>")
        parts.append("</table>")
    if worst:
        parts.append("<h2>Worst frames</h2><p class=muted>Frames that change prediction at the lowest severity. "
                     "Download the original (lossless WebP, exact pixels) and replay the perturbation with the "
                     "command shown.</p><div class=frames>")
        for w in worst:
            parts.append(
                f"<div class=frame><img alt='frame {w['frame']}' src='{encode_image(w['clean'], width=240)}'>"
                f"<img alt='perturbed' src='{encode_image(w['perturbed'], width=240)}'>"
                f"<div>frame {w['frame']}: <b>{html.escape(w['perturbation'])}</b> severity {w['severity']:g} "
                f"· {html.escape(caption(w['before']))} → {html.escape(caption(w['after']))}</div>"
                f"<div><a download='{html.escape(w['file'])}' href='{encode_image(w['clean'], '.webp')}'>"
                f"{html.escape(w['file'])}</a></div><code>{html.escape(w['replay'])}</code></div>")
        parts.append("</div>")
    parts.append("<h2>Provenance</h2><table id=provenance>")
    flat = {k: v for k, v in prov.items() if k not in ("device", "seeds", "source")}
    flat.update({f"device.{k}": v for k, v in prov.get("device", {}).items()})
    flat.update({f"seeds.{k}": v for k, v in prov.get("seeds", {}).items()})
    src = prov.get("source", {})
    flat["source"] = src.get("uri", "")
    flat["frames"] = f"{len(src.get('frames', []))} frames: {', '.join(map(str, src.get('frames', [])[:40]))}"
    for k, v in flat.items():
        parts.append(f"<tr><th>{html.escape(k)}</th><td><code>{html.escape(str(v))}</code></td></tr>")
    parts.append("</table></main></body></html>")
    return "\n".join(parts)


def write_html(path: Any, result: dict[str, Any], worst: list[dict[str, Any]] | None = None) -> None:
    from edgeprobe.harness.fileio import atomic_write

    text = render_html(result, worst)
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))
