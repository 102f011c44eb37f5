"""Latency budgets: "p99 of e2e <= 30 ms" as a verdict that survives scrutiny.

A budget is judged from a distribution-free confidence interval for the
percentile, built from order statistics: if ``B ~ Binomial(n, p)`` counts the
samples below the true percentile, then ``P(x_(l) <= q_p <= x_(u))`` is a
binomial sum, whatever the latency distribution is (Hahn & Meeker,
*Statistical Intervals*, 1991, section 5.2). So the verdict needs no normality
assumption, which tail latencies never satisfy:

- pass: the interval's upper bound is within the budget,
- fail: the interval's lower bound is over the budget,
- inconclusive: the interval straddles the budget (measure longer).

Too few samples to bound a tail percentile at all (p99 at 95% confidence needs
at least 368 samples for an upper bound: ``0.99**n <= 0.025``) gives an
infinite bound and therefore "inconclusive", never a pass on luck.

The interval assumes independent samples. Thermal drift and frequency scaling
break that, which is why the agent's guards record them next to every figure.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any, Literal

import numpy as np

from edgeprobe.harness.errors import ConfigError
from edgeprobe.harness.latency import mlperf_min_samples

Status = Literal["pass", "fail", "inconclusive"]

_UNITS_MS = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1e3}
_BUDGET_RE = re.compile(r"^\s*p(?P<pct>[0-9]+(?:\.[0-9]+)?)\s*(?:=|<=|<|:)\s*"
                        r"(?P<value>[0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?)\s*(?P<unit>ns|us|µs|ms|s)?\s*$",
                        re.IGNORECASE)


@dataclass(frozen=True)
class Budget:
    """``percentile`` of ``stage`` latency must not exceed ``budget_ms``, judged at ``confidence``."""

    budget_ms: float
    stage: str = "e2e"
    percentile: float = 99.0
    confidence: float = 0.95

    def __post_init__(self) -> None:
        if not 0.0 < self.percentile < 100.0:
            raise ConfigError(f"latency budget percentile {self.percentile:g} must lie strictly between 0 and 100, "
                              "e.g. p99=30ms")
        if not (self.budget_ms > 0.0 and math.isfinite(self.budget_ms)):
            raise ConfigError(f"latency budget {self.budget_ms:g} ms must be a positive number of milliseconds")
        if not 0.0 < self.confidence < 1.0:
            raise ConfigError(f"latency budget confidence {self.confidence:g} must lie strictly between 0 and 1, "
                              "e.g. 0.95")
        if not self.stage:
            raise ConfigError("latency budget stage is empty; name a stage such as e2e or inference")

    @property
    def label(self) -> str:
        return f"{self.stage} p{self.percentile:g} <= {self.budget_ms:g} ms"


def parse_budget(text: str, stage: str = "e2e") -> Budget:
    """Parse ``p99=30ms``, ``p99.9=0.5s``, ``p50<=12.5ms`` (units: ns, us, ms, s)."""
    m = _BUDGET_RE.match(text or "")
    if not m:
        raise ConfigError(f"latency budget {text!r} does not parse; write it as pPERCENTILE=VALUEUNIT, e.g. p99=30ms "
                          "or p99.9=0.5s")
    if m["unit"] is None:
        raise ConfigError(f"latency budget {text!r} has no unit; add one of ns, us, ms, s, e.g. p99=30ms")
    pct = float(m["pct"])
    ms = float(m["value"]) * _UNITS_MS[m["unit"].lower() if m["unit"] != "µs" else "µs"]
    if not 0.0 < pct < 100.0:
        raise ConfigError(f"latency budget {text!r}: percentile {pct:g} must lie strictly between 0 and 100")
    if ms <= 0.0:
        raise ConfigError(f"latency budget {text!r}: the time must be positive")
    return Budget(budget_ms=ms, stage=stage, percentile=pct)


# --- order-statistic intervals ------------------------------------------------


def _binomial_cdf(n: int, p: float) -> np.ndarray:
    """``P(B <= k)`` for k = 0..n, B ~ Binomial(n, p), via the log-pmf recurrence (stable for large n)."""
    k = np.arange(n, dtype=np.float64)
    steps = np.log((n - k) / (k + 1.0)) + math.log(p) - math.log1p(-p)
    logpmf = np.empty(n + 1, dtype=np.float64)
    logpmf[0] = n * math.log1p(-p)
    logpmf[1:] = logpmf[0] + np.cumsum(steps)
    top = logpmf.max()
    pmf = np.exp(logpmf - top)
    cdf: np.ndarray = np.cumsum(pmf) / pmf.sum()
    return cdf


@lru_cache(maxsize=256)
def order_statistic_ranks(n: int, percentile: float, confidence: float) -> tuple[int, int]:
    """1-based ranks ``(l, u)`` with ``P(x_(l) <= q_p <= x_(u)) >= confidence``, equal tails.

    Cached: it depends on n alone, the agent's windows repeat the same n, and the
    binomial CDF behind it was half the time of a window's latency summary.

    ``l = 0`` means no lower bound exists at this n (the interval starts at
    -inf); ``u = n + 1`` means no upper bound (it ends at +inf).
    """
    if n <= 0:
        return 0, 1
    p = percentile / 100.0
    alpha = (1.0 - confidence) / 2.0
    cdf = _binomial_cdf(n, p)  # cdf[k] = P(B <= k)
    # x_(l) <= q_p  <=>  B >= l  (B: samples below q_p). Largest l with P(B <= l-1) <= alpha.
    ok_low = np.nonzero(cdf[:n] <= alpha)[0]
    low = int(ok_low[-1]) + 1 if ok_low.size else 0
    # x_(u) >= q_p  <=>  B <= u-1. Smallest u with P(B >= u) = 1 - cdf[u-1] <= alpha.
    ok_high = np.nonzero(1.0 - cdf[:n] <= alpha)[0]
    high = int(ok_high[0]) + 1 if ok_high.size else n + 1
    return low, high


def percentile_ci(samples: Sequence[float] | np.ndarray, percentile: float, confidence: float) -> tuple[float, float]:
    """Distribution-free interval for the ``percentile`` of what produced ``samples``, in the samples' units.

    The bounds are order statistics, so they are values that were measured.
    When ``n`` is too small to bound one side at this confidence that side is
    ``-inf`` (lower) or ``+inf`` (upper); an empty sample gives ``(-inf, inf)``.
    """
    if not 0.0 < percentile < 100.0:
        raise ValueError(f"percentile must be in (0, 100), got {percentile}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    x = np.sort(np.asarray(samples, dtype=np.float64))
    n = int(x.size)
    low, high = order_statistic_ranks(n, percentile, confidence)
    lo = float(x[low - 1]) if low >= 1 else -math.inf
    hi = float(x[high - 1]) if high <= n else math.inf
    return lo, hi


def min_samples_for_bounds(percentile: float, confidence: float) -> int:
    """Smallest n whose interval has both bounds finite (p99 at 0.95: 368)."""
    p = percentile / 100.0
    alpha = (1.0 - confidence) / 2.0
    # Upper bound exists once P(all n below q_p) = p^n <= alpha; lower once (1-p)^n <= alpha.
    return max(math.ceil(math.log(alpha) / math.log(p)), math.ceil(math.log(alpha) / math.log1p(-p)))


# --- verdicts -----------------------------------------------------------------


@dataclass
class BudgetResult:
    budget: Budget
    status: Status
    estimate_ms: float
    ci_low_ms: float
    ci_high_ms: float
    n: int
    enough_samples: bool
    message: str
    #: MLPerf LoadGen's sample count for this percentile (``enough_samples`` is n >= this)
    mlperf_min_samples: int = 0
    #: how many interim verdicts were taken (early stopping); the interval is at the corrected confidence
    looks: int = 1
    #: the confidence the reported interval was computed at (lower than the budget's after several looks)
    ci_confidence: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("ci_low_ms", "ci_high_ms"):
            if not math.isfinite(d[key]):
                d[key] = None  # JSON has no infinity: None means "no bound at this n"
        return d


def _fmt_ms(v: float) -> str:
    return "-inf" if v == -math.inf else "inf" if v == math.inf else f"{v:.3f}"


def evaluate_budget(samples_ns: Sequence[int] | np.ndarray, budget: Budget, *, looks: int = 1,
                    ci_confidence: float | None = None) -> BudgetResult:
    """Judge a budget from raw nanosecond samples (warm-up already excluded)."""
    ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
    n = int(ms.size)
    conf = budget.confidence if ci_confidence is None else ci_confidence
    need = mlperf_min_samples(budget.percentile)
    if n == 0:
        return BudgetResult(budget, "inconclusive", math.nan, -math.inf, math.inf, 0, False,
                            f"{budget.label}: inconclusive, no samples", need, looks, conf,
                            ["no samples were measured"])
    est = float(np.percentile(ms, budget.percentile))
    lo, hi = percentile_ci(ms, budget.percentile, conf)
    status: Status = "pass" if hi <= budget.budget_ms else "fail" if lo > budget.budget_ms else "inconclusive"
    warnings: list[str] = []
    if not (math.isfinite(lo) and math.isfinite(hi)):
        warnings.append(f"{n} samples cannot bound p{budget.percentile:g} at {conf:.1%} confidence; "
                        f"at least {min_samples_for_bounds(budget.percentile, conf)} are needed")
    enough = n >= need
    if not enough:
        warnings.append(f"{n} samples are fewer than the {need} MLPerf LoadGen requires for a "
                        f"p{budget.percentile:g} claim (99% confidence, margin (1-p)/20)")
    # The asked confidence is what the reader asked for; early stopping widens each look's interval to keep it
    # (alpha spending), and that per-look level is a footnote, never shown as if it were the asked one.
    note = (f"; the interval is the look-adjusted {conf * 100:.4g}% one after {looks} look(s), which keeps "
            f"{budget.confidence:.0%} over all looks" if abs(conf - budget.confidence) > 1e-9 else "")
    msg = (f"{budget.label}: {status.upper()} (p{budget.percentile:g} = {est:.3f} ms, "
           f"{budget.confidence * 100:.4g}% CI [{_fmt_ms(lo)}, {_fmt_ms(hi)}] ms, n={n}{note})")
    return BudgetResult(budget, status, est, lo, hi, n, enough, msg, need, looks, conf, warnings)


# --- early stopping -------------------------------------------------------------


def look_confidence(confidence: float, look: int) -> float:
    """Per-look confidence so that all looks together keep the stated error rate.

    Checking a confidence interval again and again as samples arrive and
    stopping at the first decisive one inflates the error rate. Spending
    ``alpha * 6 / (pi^2 k^2)`` at look k keeps the total at ``alpha`` (the
    sum over k is ``alpha``), for any number of looks.
    """
    alpha = 1.0 - confidence
    return 1.0 - alpha * 6.0 / (math.pi**2 * look * look)


class BudgetSampler:
    """Collects samples and takes a verdict at doubling sample counts until it is settled.

    Looks happen at ``first_look``, 2x, 4x, ... samples, so a run of n samples
    takes about log2(n) looks and the alpha-spending correction costs little.
    """

    def __init__(self, budget: Budget, *, first_look: int | None = None, max_samples: int | None = None,
                 max_seconds: float | None = None):
        self.budget = budget
        self.samples: list[int] = []
        # The first look is the first n at which look 1 can bound the percentile on both sides.
        self.next_look = first_look or max(32, min_samples_for_bounds(budget.percentile,
                                                                      look_confidence(budget.confidence, 1)))
        self.looks = 0
        self.max_samples = max_samples
        self.max_seconds = max_seconds
        self.started = time.monotonic()
        self.result: BudgetResult | None = None
        self.stopped_by = ""

    def add(self, duration_ns: int) -> bool:
        """Record one sample; True once sampling should stop (verdict settled or a limit reached)."""
        self.samples.append(int(duration_ns))
        n = len(self.samples)
        if n >= self.next_look:
            self.next_look *= 2
            self.looks += 1
            self.result = self._judge()
            if self.result.status != "inconclusive":
                self.stopped_by = "settled"
                return True
        if self.max_samples is not None and n >= self.max_samples:
            self.stopped_by = "max_samples"
            return True
        if self.max_seconds is not None and time.monotonic() - self.started >= self.max_seconds:
            self.stopped_by = "max_seconds"
            return True
        return False

    def _judge(self) -> BudgetResult:
        looks = max(1, self.looks)
        return evaluate_budget(self.samples, self.budget, looks=looks,
                               ci_confidence=look_confidence(self.budget.confidence, looks))

    def finish(self) -> BudgetResult:
        """The final verdict (a last look if samples arrived since the previous one)."""
        if self.result is None or self.result.n != len(self.samples):
            self.looks += 1
            self.result = self._judge()
        return self.result


class BudgetDriver:
    """Early stopping for several budgets at once: the one driver behind ``bench`` and suites' latency checks.

    Each budget gets its own :class:`BudgetSampler` (which only judges); the run stops once every budget's verdict
    settled, at ``max_samples`` runs or after ``max_seconds``. The limits are the driver's, so a limit is never
    mistaken for a verdict; :attr:`reason` says which one stopped the run.
    """

    def __init__(self, budgets: Sequence[Budget], *, max_samples: int, max_seconds: float,
                 clock: Callable[[], float] = time.monotonic):
        self.samplers = [BudgetSampler(b) for b in budgets]
        self.open = set(range(len(self.samplers)))
        self.clock = clock
        self.deadline = clock() + max_seconds
        self.max_samples = max_samples
        self.runs = 0
        self.reason = ""

    def feed(self, durations: Mapping[str, int]) -> bool:
        """One run's stage timings (ns); True once the run should stop."""
        self.runs += 1
        for i in list(self.open):
            stage = self.samplers[i].budget.stage
            if stage in durations and self.samplers[i].add(durations[stage]):
                self.open.discard(i)
        if self.samplers and not self.open:
            self.reason = "settled"
        elif self.runs >= self.max_samples:
            self.reason = "max_samples"
        elif self.clock() >= self.deadline:
            self.reason = "max_seconds"
        return bool(self.reason)

    def results(self) -> list[BudgetResult]:
        """Each budget's final verdict, in the order the budgets were given."""
        return [s.finish() for s in self.samplers]
