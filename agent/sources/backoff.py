"""Reconnect delays: exponential with full jitter, so a fleet that lost the same
NVR does not reconnect in lock-step (AWS Architecture Blog, "Exponential
Backoff And Jitter", 2015)."""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, initial_s: float = 0.5, max_s: float = 30.0, factor: float = 2.0,
                 rng: random.Random | None = None):
        self.initial_s = initial_s
        self.max_s = max_s
        self.factor = factor
        self.attempt = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        """The next wait: uniform in [cap/2, cap] where cap doubles per attempt up to ``max_s``."""
        cap = min(self.max_s, self.initial_s * self.factor ** self.attempt)
        self.attempt += 1
        return self._rng.uniform(cap / 2, cap)

    def reset(self) -> None:
        self.attempt = 0
