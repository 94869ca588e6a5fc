"""The real Azure CLI and the Azurite blob emulator, both installed into ``.tools/`` by
``scripts/setup`` (kept out of ``.venv``: azure-cli pins packages that clash with ours).

Azurite verifies SharedKey signatures (a wrong key gets 403 ``AuthorizationFailure``), so it is a
real target for tests of a data-plane proxy that re-signs requests: a test passes only if the
signature that reaches it is right.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from support.processes import terminate

ROOT = Path(__file__).resolve().parents[2]
# A wrapper script (see scripts/setup), so that az may cache its bytecode.
AZ = ROOT / ".tools" / "bin" / "az"
AZURITE_BLOB = ROOT / ".tools" / "bin" / "azurite-blob"

# The emulator's one built-in account and its published, well-known key: not a secret.
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

START_TIMEOUT = 20.0
# Azurite is told to listen on port 0 (no race for a "free" port between xdist workers) and
# reports the port the kernel chose on this line.
_LISTENING = re.compile(rb"successfully listens on http://127\.0\.0\.1:(\d+)")

# Inherited variables that would change what az does: any AZURE_* is read by az as configuration
# (AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_KEY, AZURE_CONFIG_DIR, …), and az sends its
# requests through HTTP(S)_PROXY even to 127.0.0.1 unless NO_PROXY names it.
_PROXY_VARS = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}


@dataclass
class Azurite:
    url: str  # blob endpoint, path-style: http://127.0.0.1:PORT/devstoreaccount1
    account: str
    key: str
    process: subprocess.Popen[bytes]

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={self.account};"
            f"AccountKey={self.key};BlobEndpoint={self.url};"
        )

    def stop(self) -> None:
        terminate(self.process)


def start_azurite(workdir: Path) -> Azurite:
    """Azurite's blob service on a free loopback port, its data and output in ``workdir``."""
    data = workdir / "data"
    data.mkdir(parents=True, exist_ok=True)
    log = workdir / "azurite.log"
    command = [
        str(AZURITE_BLOB),
        "--blobHost=127.0.0.1",
        "--blobPort=0",
        f"--location={data}",
        # No access log per request: tests read this log only when start-up fails.
        "--silent",
        # Azurite phones home by default; no outside network here, and nothing to report.
        "--disableTelemetry",
        # az 2.91 sends x-ms-version 2026-04-06, which Azurite 3.37 knows. The two pins move
        # independently; an API version Azurite does not list yet would fail every request
        # (400 InvalidHeaderValue) although the signature is all these tests care about.
        "--skipApiVersionCheck",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True
        )
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        found = _LISTENING.search(log.read_bytes())
        if found and _accepts(int(found[1])):
            url = f"http://127.0.0.1:{int(found[1])}/{ACCOUNT}"
            return Azurite(url=url, account=ACCOUNT, key=KEY, process=process)
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            output = log.read_text(errors="replace")[-2000:]
            raise AssertionError(f"Azurite did not start ({' '.join(command)}):\n{output}")
        time.sleep(0.05)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def az_env(home: Path, **extra: str) -> dict[str, str]:
    """An environment for running az in a test: no prompts, no telemetry, no colour, JSON out,
    its configuration (and token caches) in ``home``, nothing inherited that steers az.

    ``extra`` is added last, e.g. ``AZURE_STORAGE_CONNECTION_STRING=…`` or ``HTTPS_PROXY=…``.
    """
    config = home / ".azure"
    config.mkdir(parents=True, exist_ok=True)
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("AZURE_") and name.lower() not in _PROXY_VARS
    }
    env.update(
        HOME=str(home),
        AZURE_CONFIG_DIR=str(config),
        # Telemetry is sent by a background process at exit; the survey and the "extension not
        # installed, install it?" offer would prompt or go to the network.
        AZURE_CORE_COLLECT_TELEMETRY="no",
        AZURE_CORE_SURVEY_MESSAGE="no",
        AZURE_EXTENSION_USE_DYNAMIC_INSTALL="no",
        AZURE_CORE_NO_COLOR="yes",
        AZURE_CORE_OUTPUT="json",
        # Warnings (preview notices, "no credentials given" hints) are noise on stderr; errors stay.
        AZURE_CORE_ONLY_SHOW_ERRORS="yes",
        # Does not silence `az storage blob upload/download`'s own progress: pass --no-progress.
        AZURE_CORE_DISABLE_PROGRESS_BAR="yes",
        # A per-command log file under AZURE_CONFIG_DIR/commands: only disk writes.
        AZURE_LOGGING_ENABLE_LOG_FILE="no",
    )
    env.update(extra)
    return env
