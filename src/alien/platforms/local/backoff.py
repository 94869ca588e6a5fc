"""Restart delays for crashed function processes: exponential backoff with jitter.

A function that crashes at start must not be restarted in a tight loop (it would burn the CPU it
shares with the customer's other work and flood its log), yet a function that crashed once after
running for hours should come back at once. So the delay doubles with each consecutive crash up
to a cap, and the count resets once a process has stayed up for ``stable_after`` seconds. Jitter
("equal jitter": half fixed, half random) keeps several functions that crash together from
restarting in lockstep while still guaranteeing a minimum pause.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Consecutive-failure counter that yields the next restart delay in seconds."""

    base: float = 0.5
    factor: float = 2.0
    cap: float = 30.0
    stable_after: float = 10.0
    rng: random.Random = field(default_factory=random.Random, repr=False)
    failures: int = 0

    def __post_init__(self) -> None:
        if self.base <= 0 or self.factor < 1 or self.cap < self.base or self.stable_after < 0:
            raise ValueError("backoff needs base > 0, factor >= 1, cap >= base, stable_after >= 0")

    def ceiling(self, failures: int) -> float:
        """The delay before jitter after ``failures`` consecutive crashes (1 → ``base``)."""
        if failures <= 0:
            return 0.0
        # Cap the exponent too: factor ** 10_000 would overflow a float long before it matters.
        exponent = min(failures - 1, 64)
        return min(self.cap, self.base * self.factor**exponent)

    def next_delay(self, uptime: float) -> float:
        """Record a crash after ``uptime`` seconds of running and return how long to wait."""
        if uptime >= self.stable_after:
            self.failures = 0
        self.failures += 1
        ceiling = self.ceiling(self.failures)
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)

    def reset(self) -> None:
        self.failures = 0
