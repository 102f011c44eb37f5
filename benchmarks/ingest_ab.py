"""One collector at another checkout against this one, in paired rounds: the same messages, alternating order.

On a shared machine the rate of one collector swings 2-3x between minutes (the same code gave
3,072-8,676 msg/s within one 45 s run at load 3), so two codes measured in separate runs say
little. Here each round sends one message set through the other checkout's ``edgeprobe collect``
and through this one's, in ABBA order, with benchmarks/ingest.py's publishers, broker and timing;
what matters is the paired ratio of each round and the CPU per message. ``--gmqtt`` adds a third
condition, this checkout's collector with ``--client gmqtt``, to each round (the order rotating),
paired with the other checkout's the same way.

    python benchmarks/ingest_ab.py --old /path/to/other/checkout [--rounds 4] [--mix] [--gmqtt] [--json]

The other checkout must have the same layout (``edgeprobe/`` at its root, importable with this
virtual environment): ``git worktree add --detach /tmp/main main`` makes one.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from ingest import collectors, fleet_mix, make_messages

HERE = Path(__file__).resolve().parents[1]


def run_at(checkout: Path, items: list[tuple[str, bytes]], work: Path, client: str = "paho") -> dict[str, Any]:
    """One collector from ``checkout``: ``python -m edgeprobe`` finds the package in its working directory."""
    cwd, path = os.getcwd(), os.environ.get("PYTHONPATH")
    os.chdir(checkout)
    os.environ["PYTHONPATH"] = str(checkout)
    try:
        return collectors(items, 1, work, client)
    finally:
        os.chdir(cwd)
        if path is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--old", type=Path, required=True, help="the other checkout (its root folder)")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--messages", type=int, default=20_000)
    ap.add_argument("--mix", action="store_true", help="the fleet mix instead of health windows")
    ap.add_argument("--gmqtt", action="store_true", help="also this checkout's collector on --client gmqtt")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not (args.old / "edgeprobe").is_dir():
        print(f"--old {args.old} is not an edgeprobe checkout (no edgeprobe/ folder in it)", file=sys.stderr)
        raise SystemExit(2)
    work = Path(tempfile.mkdtemp(prefix="edgeprobe-ingest-ab-"))
    #: condition -> (checkout, client)
    conditions = {"old": (args.old.resolve(), "paho"), "new": (HERE, "paho")}
    if args.gmqtt:
        conditions["new_gmqtt"] = (HERE, "gmqtt")
    names = list(conditions)
    res: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    load = [os.getloadavg()[0]]
    for r in range(args.rounds):
        n = args.messages
        items = fleet_mix(n, offset=r) if args.mix else make_messages(n, offset=r * n)
        k = r % len(names)  # rotate, then reverse every other round: each condition takes each place
        order = names[k:] + names[:k]
        for which in order if r % 2 == 0 else order[::-1]:
            checkout, client = conditions[which]
            res[which].append(run_at(checkout, items, work, client))
        load.append(os.getloadavg()[0])
        if not args.json:
            print(f"round {r + 1}: " + " ".join(f"{w} {res[w][-1]['msg_per_s']:,.0f}/s" for w in names)
                  + f" (load {load[-1]:.1f})", file=sys.stderr)

    def med(which: str, field: str) -> float:
        return round(statistics.median(x[field] for x in res[which]), 1)

    summary: dict[str, Any] = {"messages": args.messages, "rounds": args.rounds, "mix": args.mix,
                               "load_average_1m": [round(x, 1) for x in load]}
    for which in res:
        rates = [x["msg_per_s"] for x in res[which]]
        summary[which] = {"msg_per_s": round(statistics.median(rates)),
                          "spread": [round(min(rates)), round(max(rates))],
                          "cpu_us_per_msg": med(which, "collector_us"), "network_us": med(which, "network_us"),
                          "store_process_us": med(which, "store_us")}
    for which in names[1:]:
        ratios = [n["msg_per_s"] / o["msg_per_s"] for n, o in zip(res[which], res["old"], strict=True)]
        summary[f"paired_{which}_over_old"] = [round(x, 2) for x in ratios]
        summary[f"paired_{which}_median"] = round(statistics.median(ratios), 2)
    print(json.dumps(summary) if args.json else "\n".join(f"{k:22s} {v}" for k, v in summary.items()))


if __name__ == "__main__":
    main()
