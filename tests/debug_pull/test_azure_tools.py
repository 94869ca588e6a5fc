"""The Azure tooling on its own, without alien in between: the az that scripts/setup installs talks
to Azurite with a connection string from the environment (as `alien debug` will hand it one), and
Azurite really checks SharedKey signatures — the property tests of re-signing rely on."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from support.azurite import AZ, Azurite, az_env

# az starts in ~1 s; the first run after setup also writes az's bytecode (~3 s more).
AZ_TIMEOUT = 60


def az(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(AZ), *args], env=env, capture_output=True, text=True, timeout=AZ_TIMEOUT
    )


def test_az_round_trip_through_azurite(azurite: Azurite, tmp_path: Path) -> None:
    env = az_env(tmp_path / "home", AZURE_STORAGE_CONNECTION_STRING=azurite.connection_string)
    source = tmp_path / "hello.txt"
    source.write_bytes(b"hello from az\n")
    # A name that needs percent-encoding in the request path (and so in the signed resource).
    name = "dir/a b+c.txt"

    created = az(env, "storage", "container", "create", "-n", "tools")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout) == {"created": True}

    uploaded = az(
        env, "storage", "blob", "upload", "--no-progress",
        "-c", "tools", "-n", name, "-f", str(source), "-o", "none",
    )  # fmt: skip
    assert uploaded.returncode == 0, uploaded.stderr

    listed = az(env, "storage", "blob", "list", "-c", "tools", "--query", "[].name")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == [name]

    target = tmp_path / "back.txt"
    downloaded = az(
        env, "storage", "blob", "download", "--no-progress",
        "-c", "tools", "-n", name, "-f", str(target), "-o", "none",
    )  # fmt: skip
    assert downloaded.returncode == 0, downloaded.stderr
    assert target.read_bytes() == source.read_bytes()


def test_azurite_refuses_a_wrong_account_key(azurite: Azurite, tmp_path: Path) -> None:
    # The published key with its first character changed: still valid base64, same length.
    wrong = "F" + azurite.key[1:]
    assert wrong != azurite.key
    connection = azurite.connection_string.replace(azurite.key, wrong)
    env = az_env(tmp_path / "home", AZURE_STORAGE_CONNECTION_STRING=connection)

    result = az(env, "storage", "container", "list")

    assert result.returncode != 0
    # Azurite answers 403 AuthorizationFailure; az words that as a network-rules problem.
    assert "blocked by network rules" in result.stderr, result.stderr
