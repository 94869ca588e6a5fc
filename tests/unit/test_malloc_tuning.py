"""Large buffers are reused, not faulted in afresh, once a process called keep_freed_memory.

Each check runs in a fresh interpreter: the thresholds are the process's for its lifetime."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux")
    or not (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc"),
    reason="glibc's malloc only",
)

CHURN = """
import resource, sys
from alien.malloc_tuning import keep_freed_memory
tuned = keep_freed_memory() if sys.argv[1] == "tune" else False
payload = b"x" * 2**20
def rounds(n):
    for _ in range(n):
        copy = bytearray(payload); again = bytes(copy); tail = again[1:]
        del copy, again, tail
rounds(20)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
rounds(200)
print(tuned, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def churn(mode: str, **env: str) -> tuple[str, int]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_"))}
    result = subprocess.run(
        [sys.executable, "-c", CHURN, mode],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    tuned, faults = result.stdout.split()
    return tuned, int(faults)


def test_one_mib_buffers_churned_cost_no_page_faults_once_tuned() -> None:
    tuned, faults = churn("tune")
    assert tuned == "True"
    assert faults < 100  # 200 rounds of three 1 MiB buffers: ~150,000 faults untuned here


def test_thresholds_the_operator_set_are_left_alone() -> None:
    tuned, _ = churn("tune", MALLOC_TRIM_THRESHOLD_="131072")
    assert tuned == "False"
