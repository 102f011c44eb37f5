"""Verdicts of `make arm64-smoke`: the emulated aarch64 run's figures and the x86_64 vs aarch64 golden deltas.

Reads what deploy/arm64/smoke.sh left in its results folder (``edgeprobe run --json`` of the aarch64 run,
``edgeprobe check --json`` of each suite on both architectures) and prints, per model, two findings apart:

* the verdict, same model and same input tensors: whether aarch64's outputs on the tensors recorded on x86_64
  (the golden file holds them, so both runtimes see identical inputs) match x86_64's, the agreement over n
  frames, the largest absolute output difference and that difference relative to the largest reference output;
* the inputs: whether aarch64's OpenCV decodes the video into the same pixels as x86_64's and preprocesses
  them into the same tensors, by how much not, and how many answers aarch64's own decoding and preprocessing
  change. A warning, never a failure.

Each robustness figure is shown on both sides. Exits 1 when the aarch64 run or any golden verdict failed,
2 when a result is missing or unreadable.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np


class NoResult(Exception):
    """A run left no readable result (it crashed, or was never run)."""


def _load(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        rc_file, err = path.with_suffix(".rc"), path.with_suffix(".err")
        rc = rc_file.read_text().strip() if rc_file.exists() else "?"
        how = f"exit {rc}" + (" (SIGSEGV)" if rc == "139" else "")
        tail = [ln for ln in (err.read_text().splitlines() if err.exists() else []) if ln.strip()][-2:]
        raise NoResult(f"{path} is missing or not JSON ({exc.__class__.__name__}); {how}; "
                       + " / ".join(t.strip()[:160] for t in tail)) from None
    return data


def _golden(result: dict[str, Any]) -> dict[str, Any]:
    for check in result["checks"]:
        if check["kind"] == "golden":
            return dict(check)
    raise SystemExit(f"arm64-smoke: suite {result.get('suite')} has no golden check")


def _reference_scale(golden_file: Path) -> float:
    """The largest |output| the x86_64 reference holds (not its stored inputs), so a delta reads relative to it."""
    with np.load(golden_file, allow_pickle=False) as z:
        outputs = [k for k in z.files if k != "meta" and not k.endswith(("_in", "_x"))]
        return max((float(np.max(np.abs(z[k]))) for k in outputs if z[k].size), default=0.0)


def suite_row(name: str, results: Path, golden_dir: Path) -> tuple[dict[str, Any], bool]:
    x86 = _load(results / f"{name}-x86_64.json")
    arm = _load(results / f"{name}-aarch64.json")
    machine = arm["provenance"]["device"]["machine"]
    if machine != "aarch64":
        raise SystemExit(f"arm64-smoke: suite {name} ran on {machine}, not aarch64")
    g = _golden(arm)
    details = g["details"]
    scale = _reference_scale(golden_dir / Path(g["name"].split()[-1]).name)
    robustness = {
        c["name"]: (x["figure"], c["figure"])
        for c, x in zip(arm["checks"], x86["checks"], strict=True) if c["kind"] == "robustness"
    }
    row = {
        "suite": name, "model": Path(arm["provenance"]["model_path"]).name,
        "runtime_x86_64": x86["provenance"]["runtime"], "runtime_aarch64": arm["provenance"]["runtime"],
        "golden": g["status"], "agreement": g["figure"], "frames": details["frames"],
        "tolerance": details["tolerance"], "max_abs_diff": details["max_abs_output_diff"],
        "rel_diff": details["max_abs_output_diff"] / scale if scale else 0.0,
        "fed": details.get("fed", "frames decoded here"), "robustness": robustness,
        "decoded_differently": details["frames_decoded_differently"], "inputs": details.get("inputs", {}),
        "input_warning": details.get("input_warning"),
    }
    return row, g["status"] == "pass" and _golden(x86)["status"] == "pass"


def _pixels(row: dict[str, Any]) -> str:
    top = row["inputs"].get("max_pixel_diff")
    return "identical" if not row["decoded_differently"] else "unknown" if top is None else f"{top}/255"


def _tensors(row: dict[str, Any]) -> str:
    k, top = row["inputs"].get("preprocess_differ", "?"), row["inputs"].get("max_tensor_diff")
    return f"{k} of {row['frames']}" + (f" ({top:.3g})" if top is not None else "")


def _inputs_line(row: dict[str, Any]) -> str:
    """The inputs finding in words: the check's own warning where it gave one, else that the inputs matched."""
    if row["input_warning"]:
        return f"WARNING (not a model difference) {row['input_warning']}"
    if row["decoded_differently"]:
        return (f"WARNING (not a model difference) {row['decoded_differently']} of {row['frames']} frames decoded "
                "differently on aarch64")
    return (f"aarch64 decoded all {row['frames']} frames into the same pixels as x86_64 and preprocessed them into "
            "the same tensors")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True, help="edgeprobe run --json of the aarch64 run")
    ap.add_argument("--frames", type=int, required=True, help="frames the run was asked for")
    ap.add_argument("--results", type=Path, help="folder of <suite>-<arch>.json check results")
    ap.add_argument("--markdown", type=Path, help="write the deltas table here too")
    ap.add_argument("suites", nargs="*")
    args = ap.parse_args(argv)

    ok = True
    try:
        run = _load(args.run)
    except NoResult as exc:
        raise SystemExit(f"arm64-smoke: {exc}") from None
    run_ok = run.get("frames") == args.frames and run.get("messages", {}).get("latency", 0) >= 1
    ok &= run_ok
    print(f"aarch64 edgeprobe run: {run.get('frames')} of {args.frames} frames, {run.get('probed_frames')} probed, "
          f"messages {run.get('messages')}: {'ok' if run_ok else 'FAILED'}")
    rows = []
    for name in args.suites:
        if args.results is None:
            ap.error("--results is needed with suites")
        try:
            row, passed = suite_row(name, args.results, args.results.parent / "golden")
        except NoResult as exc:
            print(f"suite {name}: FAILED, no result: {exc}")
            ok = False
            continue
        ok &= passed
        rows.append(row)
        rob = "; ".join(f"{k}: x86_64 {a:.2f} / aarch64 {b:.2f}" for k, (a, b) in row["robustness"].items())
        print(f"{row['model']} ({row['runtime_aarch64']} on aarch64, {row['runtime_x86_64']} on x86_64), same "
              f"model fed the {row['fed']}: golden {row['golden'].upper()}, {row['agreement']:.0%} of "
              f"{row['frames']} frames agree (tolerance {row['tolerance']}), max |output diff| "
              f"{row['max_abs_diff']:.3g} ({row['rel_diff']:.2g} of the largest output)" + (f"; {rob}" if rob else ""))
        print(f"  inputs: {_inputs_line(row)}")
    if args.markdown and rows:
        lines = ["| model | runtime (aarch64 / x86_64) | golden agreement, same input tensors | max abs output diff "
                 "(relative) | frames decoded differently (max pixel diff) | tensors preprocessed differently (max "
                 "diff) | answers changed by aarch64's own decoding and preprocessing |",
                 "| --- | --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {r['model']} | {r['runtime_aarch64']} / {r['runtime_x86_64']} | {r['agreement']:.0%} of "
                  f"{r['frames']} ({r['golden']}) | {r['max_abs_diff']:.3g} ({r['rel_diff']:.2g}) | "
                  f"{r['decoded_differently']} of {r['frames']} ({_pixels(r)}) | {_tensors(r)} | "
                  f"{r['inputs'].get('answers_differ_on_local_pipeline', '?')} of {r['frames']} |"
                  for r in rows]
        args.markdown.write_text("\n".join(lines) + "\n")
    print("arm64-smoke: " + ("PASS" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
