"""Verdicts: one check's result, the suite's one verdict, and the exit code every command shares.

Exit codes (every command's ``--help`` lists them; :data:`EXIT_CODES`):
0 pass, 1 a check failed, 2 usage or configuration error, 3 inconclusive
(the evidence does not decide: measure longer or on more frames), 4 internal
error (a bug in edgeprobe or a check that crashed).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["pass", "fail", "error", "inconclusive"]
STATUSES: tuple[str, ...] = ("pass", "fail", "error", "inconclusive")

EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_INCONCLUSIVE, EXIT_INTERNAL = 0, 1, 2, 3, 4
EXIT_CODES = ("Exit codes: 0 pass, 1 a check failed, 2 usage or configuration error, "
              "3 inconclusive (the evidence does not decide), 4 internal error.")


@dataclass
class CheckResult:
    """One check's verdict with the figure behind it."""

    name: str
    kind: str
    status: Status
    #: the measured figure (None when it could not be measured)
    figure: float | None
    #: the limit it was held to
    limit: float | None
    unit: str = ""
    #: "<=" (figure must not exceed the limit) or ">="
    op: str = "<="
    message: str = ""
    #: confidence bounds, sample counts, per-frame detail
    details: dict[str, Any] = field(default_factory=dict)
    #: seconds spent measuring and judging this check (JUnit's per-case time)
    seconds: float = 0.0

    @property
    def better(self) -> str:
        return "lower" if self.op == "<=" else "higher"

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["better"] = self.better
        return d


def decide(figure: float, limit: float, op: str, low: float | None = None, high: float | None = None) -> Status:
    """pass/fail on the figure, or on its interval when one is given (straddling = inconclusive)."""
    if math.isnan(figure):
        return "error"
    if low is None or high is None:
        ok = figure <= limit if op == "<=" else figure >= limit
        return "pass" if ok else "fail"
    if op == "<=":
        return "pass" if high <= limit else "fail" if low > limit else "inconclusive"
    return "pass" if low >= limit else "fail" if high < limit else "inconclusive"


def north_star(results: list[CheckResult], inconclusive: str = "inconclusive") -> Status:
    """The suite's one verdict: error beats fail beats inconclusive beats pass.

    ``inconclusive`` is the suite's policy for an undecided check: reported as such (exit 3), or counted as a
    failure or a pass.
    """
    statuses = {r.status for r in results}
    if "error" in statuses:
        return "error"
    if "fail" in statuses:
        return "fail"
    if "inconclusive" in statuses:
        return "fail" if inconclusive == "fail" else "pass" if inconclusive == "pass" else "inconclusive"
    return "pass"


def exit_code(status: str) -> int:
    return {"pass": EXIT_PASS, "fail": EXIT_FAIL, "inconclusive": EXIT_INCONCLUSIVE}.get(status, EXIT_INTERNAL)


def headline(results: list[CheckResult], status: str) -> str:
    """One sentence: the north star and what drove it."""
    n = len(results)
    bad = [r for r in results if r.status != "pass"]
    if not bad:
        return f"PASS: all {n} checks passed"
    parts = "; ".join(f"{r.name}: {r.status}" + (f" ({r.figure:.3g} vs limit {r.op} {r.limit:.3g})"
                                                  if r.figure is not None and r.limit is not None else "")
                      for r in bad[:3])
    more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
    return f"{status.upper()}: {len(bad)} of {n} checks not passed ({parts}{more})"
