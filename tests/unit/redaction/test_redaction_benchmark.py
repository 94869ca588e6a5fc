"""Micro-benchmark (printed, not a gate): 1 MB of log text against 1,000 registered secrets.

Run with ``-s`` (or ``-rP``) to see the figures. The assertions only check the work was done.
"""

from __future__ import annotations

import random
import time

from alien.redaction import REDACTED, Redactor

WORDS = [
    "GET",
    "POST",
    "/v1/deployments",
    "/v1/commands",
    "status=200",
    "took",
    "user=key_0123456789abcdef",
    "INFO",
    "alien.manager.api",
    "deployment",
    "converged",
    "lease",
    "renewed",
]


def _log_text(rng: random.Random, secrets: list[str], planted_share: float) -> tuple[str, int]:
    lines: list[str] = []
    planted = total = 0
    while total < 1_000_000:
        line = "2026-03-01T12:00:07.123456Z " + " ".join(rng.choices(WORDS, k=12))
        if rng.random() < planted_share:
            line += f" value={rng.choice(secrets)}"
            planted += 1
        lines.append(line)
        total += len(line) + 1
    return "\n".join(lines), planted


def _ms(seconds: float) -> str:
    return f"{1000 * seconds:.0f} ms"


def test_one_megabyte_with_a_thousand_secrets() -> None:
    rng = random.Random(1234)
    secrets = [f"{rng.getrandbits(160):040x}" for _ in range(1000)]
    dirty, planted = _log_text(rng, secrets, 0.02)
    clean, _ = _log_text(rng, secrets, 0.0)
    redactor = Redactor(secrets)

    t0 = time.perf_counter()
    redactor.redact_text("compile")
    t1 = time.perf_counter()
    out = redactor.redact_text(dirty)
    t2 = time.perf_counter()
    redactor.redact_text(clean)
    t3 = time.perf_counter()
    redactor.add_secret("one-more-secret-read-from-the-vault")
    redactor.redact_text("a log line")
    t4 = time.perf_counter()

    print(
        f"\nredaction, 1,000 secrets: compile {_ms(t1 - t0)}; 1 MB with {planted} planted "
        f"{_ms(t2 - t1)}; 1 MB with none {_ms(t3 - t2)}; one more secret + a line {_ms(t4 - t3)}"
    )
    assert out.count(REDACTED) == planted
    assert not any(secret in out for secret in secrets)
