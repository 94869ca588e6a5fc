"""Restart delays: exponential, capped, jittered, reset after a stable run."""

from __future__ import annotations

import random

import pytest

from alien.platforms.local.backoff import Backoff


def test_the_ceiling_doubles_up_to_the_cap() -> None:
    backoff = Backoff(base=0.5, factor=2, cap=4)
    assert [backoff.ceiling(n) for n in range(7)] == [0, 0.5, 1, 2, 4, 4, 4]
    assert backoff.ceiling(10_000) == 4  # no float overflow for a long crash loop


def test_each_delay_is_between_half_the_ceiling_and_the_ceiling() -> None:
    backoff = Backoff(base=1, cap=8, rng=random.Random(7))
    for failures in range(1, 30):
        delay = backoff.next_delay(uptime=0.1)
        ceiling = backoff.ceiling(failures)
        assert ceiling / 2 <= delay <= ceiling


def test_jitter_spreads_functions_that_crash_together() -> None:
    delays = {Backoff(base=1, rng=random.Random(seed)).next_delay(0) for seed in range(20)}
    assert len(delays) == 20


def test_a_process_that_ran_long_enough_restarts_quickly_again() -> None:
    backoff = Backoff(base=1, cap=30, stable_after=10, rng=random.Random(1))
    for _ in range(5):
        backoff.next_delay(uptime=0.5)
    assert backoff.failures == 5
    assert backoff.next_delay(uptime=60) <= 1  # counted as the first crash again
    assert backoff.failures == 1
    backoff.reset()
    assert backoff.failures == 0


@pytest.mark.parametrize(
    "kwargs", [{"base": 0}, {"factor": 0.5}, {"base": 2, "cap": 1}, {"stable_after": -1}]
)
def test_nonsense_parameters_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)
