"""Stopping the servers tests start (moto, Azurite, emulators): politely, then for sure."""

from __future__ import annotations

import subprocess


def terminate(process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL if ``process`` has not exited within ``timeout`` seconds."""
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
