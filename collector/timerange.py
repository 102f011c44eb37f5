"""Time ranges for fleet questions: ``--since 1h``, ``--until 2026-01-02T00:00:00Z``.

A bound is either an RFC 3339 timestamp (with its UTC offset) or a duration back from now
(``90s``, ``15m``, ``1h``, ``7d``, ``2w``, combinable as ``1d12h``). Rollups are per UTC hour,
so a range is answered in whole hours: ``since`` is rounded down to its hour and ``until``
up, and the answer names the hours it covers rather than pretending to minute precision.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from edgeprobe.harness.errors import ConfigError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?[smhdw])+$")
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
HOUR_S = 3600


def parse_duration(text: str, option: str) -> float:
    """Seconds in a duration such as ``7d`` or ``1h30m``; ConfigError naming ``option`` otherwise."""
    t = text.strip().lower()
    if not _DURATION.match(t):
        raise ConfigError(f"{option} {text!r} is not a duration; write it like 90s, 15m, 1h, 7d or 2w")
    seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(t))
    if seconds <= 0:
        raise ConfigError(f"{option} {text!r} is zero; give a positive duration such as 1h")
    return seconds


def parse_instant(text: str, option: str, now: float | None = None) -> float:
    """Epoch seconds of an RFC 3339 timestamp, or of ``now`` minus a duration."""
    t = text.strip()
    now = dt.datetime.now(dt.timezone.utc).timestamp() if now is None else now
    if _DURATION.match(t.lower()):
        return now - parse_duration(t, option)
    try:
        when = dt.datetime.fromisoformat(t[:-1] + "+00:00" if t[-1:] in "zZ" and t else t)
    except ValueError:
        when = None
    if when is None:
        raise ConfigError(f"{option} {text!r} is neither a duration (1h, 7d) nor an RFC 3339 time "
                          "(2026-01-02T00:00:00Z); give one of those")
    if when.tzinfo is None:
        raise ConfigError(f"{option} {text!r} has no UTC offset; add one (Z or +01:00) so the time is unambiguous")
    return when.timestamp()


@dataclass(frozen=True)
class TimeRange:
    """Whole UTC hours ``[start_hour, end_hour)``, epoch seconds; None on a side means unbounded."""

    start_hour: int | None
    end_hour: int | None

    @classmethod
    def of(cls, since: float | None = None, until: float | None = None) -> TimeRange:
        start = None if since is None else int(since // HOUR_S) * HOUR_S
        end = None if until is None else -int(-until // HOUR_S) * HOUR_S
        if start is not None and end is not None and end <= start:
            end = start + HOUR_S  # an instant range still covers the hour it falls in
        return cls(start, end)

    @classmethod
    def parse(cls, since: str | None, until: str | None, now: float | None = None) -> TimeRange:
        s = None if since is None else parse_instant(since, "--since", now)
        u = None if until is None else parse_instant(until, "--until", now)
        if s is not None and u is not None and u < s:
            raise ConfigError(f"--until {until!r} is before --since {since!r}; swap them")
        return cls.of(s, u)

    def sql(self, column: str = "hour") -> tuple[str, list[int]]:
        """A WHERE fragment (``1=1`` when unbounded) and its parameters."""
        parts, args = [], []
        if self.start_hour is not None:
            parts.append(f"{column} >= ?")
            args.append(self.start_hour)
        if self.end_hour is not None:
            parts.append(f"{column} < ?")
            args.append(self.end_hour)
        return (" AND ".join(parts) or "1=1"), args

    def describe(self) -> dict[str, str | None]:
        def iso(x: int | None) -> str | None:
            return None if x is None else dt.datetime.fromtimestamp(x, dt.timezone.utc).isoformat()

        return {"from": iso(self.start_hour), "to": iso(self.end_hour)}


ALL_TIME = TimeRange(None, None)
