"""Google's Pub/Sub emulator (from the Google Cloud SDK on this machine) on a free loopback port:
a real Google API for ``gcloud`` to call through a pull-model debug session."""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from support.processes import terminate

EMULATOR = Path("/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator")
START_TIMEOUT = 60.0


@dataclass
class PubSubEmulator:
    url: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        terminate(self.process)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_pubsub(log: Path) -> PubSubEmulator:
    port = _free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(EMULATOR), "--host=127.0.0.1", f"--port={port}"],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return PubSubEmulator(url, process)
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"the Pub/Sub emulator did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.1)
