"""`edgeprobe bench`: a latency budget as a CI gate (exit 0 pass, 1 fail, 2 usage error, 3 inconclusive)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from edgeprobe.agent.bench import BenchResult

EXIT_FAIL = 1
EXIT_INCONCLUSIVE = 3


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)


def bench(
    model: Annotated[Path, typer.Argument(help="ONNX (or TFLite) model file.")],
    source: Annotated[str | None, typer.Option(
        "--source", "-s", help="Video file or image folder the frames come from (default: generated frames).")] = None,
    generate: Annotated[str | None, typer.Option(
        help="Without --source: 'noise' (seeded uniform, the default) or 'constant' (mid-grey) frames at the "
             "model's input size, as onnxruntime_perf_test and trtexec feed.")] = None,
    budget: Annotated[list[str] | None, typer.Option(
        "--budget", "-b", help="Latency budget, e.g. p99=30ms (repeatable).")] = None,
    stage: Annotated[str, typer.Option(help="Stage the budgets apply to: e2e, inference, preprocess, ...")] = "e2e",
    confidence: Annotated[float, typer.Option(help="Confidence of the budget verdict.")] = 0.95,
    mode: Annotated[str, typer.Option(help="single_stream, paced (camera fps) or throughput.")] = "single_stream",
    fps: Annotated[float | None, typer.Option(help="Paced mode: camera fps (default: the source's).")] = None,
    batch: Annotated[int, typer.Option(help="Throughput mode: frames per inference.")] = 1,
    concurrency: Annotated[int, typer.Option(help="Throughput mode: parallel inference threads.")] = 1,
    threads: Annotated[int, typer.Option(help="ONNX Runtime intra-op threads (0 = runtime default).")] = 0,
    provider: Annotated[list[str] | None, typer.Option(
        "--provider", help="ONNX Runtime execution provider, in order of preference (repeatable).")] = None,
    warmup: Annotated[int, typer.Option(help="Warm-up runs, never in the percentiles.", min=0)] = 10,
    warmup_stable: Annotated[bool, typer.Option(
        "--warmup-stable", help="Warm up until consecutive blocks of runs agree (at least --warmup runs).")] = False,
    max_seconds: Annotated[float, typer.Option(help="Stop measuring after this long if not settled.")] = 30.0,
    max_samples: Annotated[int, typer.Option(help="Stop after this many measured frames.")] = 1_000_000,
    frames: Annotated[int, typer.Option(help="Distinct source frames decoded up front and cycled through.")] = 32,
    task: Annotated[str, typer.Option(help="Task adapter for postprocess (auto, none, classification, ...).")] = "auto",
    input_size: Annotated[str | None, typer.Option(
        "--input-size", help="HxW fed to a model whose input height/width are dynamic, e.g. 640x640.")] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="Agent YAML to take model preprocessing, providers and threads from.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Measure a model's latency stage by stage and judge latency budgets from percentile confidence intervals."""
    import os

    from edgeprobe.agent.bench import BenchConfig, run_bench
    from edgeprobe.agent.config import ModelConfig, PreprocessConfig, load_config
    from edgeprobe.cli.assets import cache_dir
    from edgeprobe.cli.console import interactive, progress_bar
    from edgeprobe.cli.userinput import existing_file, parse_input_size, yaml_file
    from edgeprobe.harness.budget import Budget, parse_budget
    from edgeprobe.harness.errors import ConfigError
    from edgeprobe.harness.modelconfig import ProviderConfig

    os.environ.setdefault("EDGEPROBE_ASSETS", str(cache_dir()))
    existing_file(model, "model file", "give the path of a .onnx or .tflite model")
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"--confidence {confidence:g} must lie strictly between 0 and 1, e.g. 0.95")
    budgets: list[Budget] = []
    for text in budget or []:
        b = parse_budget(text, stage=stage)
        budgets.append(Budget(budget_ms=b.budget_ms, stage=b.stage, percentile=b.percentile, confidence=confidence))
    if generate is not None and source is not None:
        raise ConfigError("pass --source or --generate, not both: generated frames replace the source")
    if generate not in (None, "noise", "constant"):
        raise ConfigError(f"--generate {generate!r} is not a kind of generated input; use noise or constant")
    preprocess = PreprocessConfig()
    providers: list[str | ProviderConfig] = ["CPUExecutionProvider"]
    size = parse_input_size(input_size) if input_size else None
    if config is not None:
        yaml_file(config, "config file", "pass the path to an agent YAML file")
        overrides = {"model.path": str(model.resolve())} | ({"source.uri": source} if source else {})
        base = load_config(config, overrides).config.model
        preprocess, providers, threads = base.preprocess, base.providers, threads or base.threads
        size = size or base.input_size
    if provider:
        providers = list(provider)
    if threads < 0:
        raise ConfigError("--threads must be 0 (runtime default) or more")
    cfg = BenchConfig(
        model=ModelConfig(path=str(model), providers=providers, threads=threads, preprocess=preprocess,
                          input_size=size),
        source=source, generate=generate or "noise",  # type: ignore[arg-type]
        task=task, mode=mode, fps=fps, batch=batch,  # type: ignore[arg-type]
        concurrency=concurrency, warmup=warmup, warmup_stable=warmup_stable, max_seconds=max_seconds,
        max_samples=max_samples, budgets=budgets, frames=frames,
    )
    with progress_bar("measuring", None, interactive(json_output)) as bar:
        def progress(n: int) -> None:
            if bar is not None:
                bar.update(bar.task_ids[0], completed=n)

        result = run_bench(cfg, on_progress=progress)
    if json_output:
        print(json.dumps(result.as_dict(), allow_nan=False, default=_json_default))
    else:
        _print(result)
    verdict = result.verdict
    if verdict == "fail":
        raise typer.Exit(EXIT_FAIL)
    if verdict == "inconclusive":
        raise typer.Exit(EXIT_INCONCLUSIVE)


def _json_default(value: Any) -> Any:
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _ci(ci: dict[str, Any], key: str) -> str:
    lo, hi = ci.get(key, (None, None))
    return f"[{'-inf' if lo is None else f'{lo:.3f}'}, {'inf' if hi is None else f'{hi:.3f}'}]"


def _print(result: BenchResult) -> None:
    from edgeprobe.cli.console import console

    def out(line: str) -> None:
        console.print(line, markup=False, highlight=False, soft_wrap=True)

    d = result.as_dict()
    m = d["model"]
    out(f"{Path(m['path']).name} on {m['runtime']} ({', '.join(m['providers'] or ['?'])}), "
                  f"mode {d['mode']}, threads {d['threads'] or 'default'}; source {d['source'].get('uri', '?')}")
    if d["source"].get("kind") == "generated":
        out(f"input: {d['source']['note']}")
    cold = d["cold_start"]
    out(f"cold start: session {cold['session_ms']:.1f} ms, first inference {cold['first_inference_ms']:.2f} ms,"
                  f" {cold['warmup_runs']} warm-up runs ({cold['warmup_ms']:.0f} ms, not in the figures)")
    out("latency in ms; [low, high]: 95% distribution-free interval (order statistics)")
    head = f"{'stage':<13}{'n':>7} {'p50 [low, high]':>26} {'p90':>9} {'p99 [low, high]':>28} {'p99.9':>9}" \
           f" {'max':>9} {'mean':>9} {'stdev':>8} {'CoV':>7}"
    out(head)
    for name, s in d["stages"].items():
        out(f"{name:<13}{s['count']:>7} {s['p50']:>9.3f} {_ci(s['ci'], 'p50'):>16} {s['p90']:>9.3f}"
                      f" {s['p99']:>9.3f} {_ci(s['ci'], 'p99'):>18} {s['p99_9']:>9.3f} {s['max']:>9.3f}"
                      f" {s['mean']:>9.3f} {s['stdev']:>8.3f} {s['cov']:>7.1%}")
    mf = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in d["mode_figures"].items()}
    out("figures: " + ", ".join(f"{k} {v}" for k, v in mf.items()))
    mem = d["memory"]
    out(f"memory: model load added {mem['model_rss_mb']:.1f} MB, peak RSS {mem['peak_rss_mb']:.1f} MB")
    g = d["guards"]
    facts = [f"governor {'/'.join(g['governors']) or 'unknown'}"]
    if g["max_temp_c"] is not None:
        facts.append(f"max {g['max_temp_c']:.0f} °C")
    if g["power_mode"]:
        facts.append(f"power mode {g['power_mode']}")
    if g["other_cpu_cores"] is not None:
        facts.append(f"other load {g['other_cpu_cores']:.2f} cores")
    out("guards: " + ", ".join(facts) + (", THROTTLED" if g["throttled"] else ""))
    for flag in d["flags"]:
        console.print(f"[yellow]warning:[/] {flag}", highlight=False)
    for b in result.budgets:
        colour = {"pass": "green", "fail": "red"}.get(b.status, "yellow")
        console.print(b.message, style=f"bold {colour}", markup=False, highlight=False, soft_wrap=True)
        for w in b.warnings:
            out(f"  note: {w}")
    if result.budgets:
        out(f"stopped: {d['stopped_by']} after {d['wall_s']:.1f} s"
                      + ("" if all(math.isfinite(b.ci_high_ms) for b in result.budgets) else
                         " (increase --max-seconds for a bounded interval)"))
