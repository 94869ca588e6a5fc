"""Helpers of the agent-commands suite: the ``alien`` CLI as a process, handler journals, waits.

Handlers of the test app write what happened to them (``started <id> <attempt>``, ``finished …``,
``stopped …``) to a journal file the test names; tests read it back here, polling with a
deadline, so they wait for what they expect rather than for a fixed time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
WAIT_TIMEOUT = 20.0


def alien_cli(manager_url: str, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``alien <args>`` in its own process, against ``manager_url`` with ``token``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALIEN_")}
    env.update(ALIEN_MANAGER_URL=manager_url, ALIEN_TOKEN=token)
    return subprocess.run(
        [sys.executable, "-m", "alien.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def eventually(check: Callable[[], T | None], what: str, timeout: float = WAIT_TIMEOUT) -> T:
    """Call ``check`` until it returns something truthy (polled, with a deadline); return it."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def journal(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def wait_journal(path: Path, line: str, timeout: float = WAIT_TIMEOUT) -> list[str]:
    """The journal once it holds ``line``."""

    def holds() -> list[str] | None:
        found = journal(path)
        return found if line in found else None

    return eventually(holds, repr(line), timeout)
