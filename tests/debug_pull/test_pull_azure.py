"""The real ``az`` through a pull-model session: Azure Blob storage calls leave from the agent,
signed with the storage account's key, which only the agent holds — here against Azurite, which
checks Shared Key signatures like Azure does.

The engineer's ``az storage`` signs with a dummy account key made for the session; the CLI's
loopback endpoint checks that signature, and the agent signs again with the real key."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from dbg_world import World
from debug_moto import MotoServer
from pull_world import PullDeployment, make_world, start_agent

from support.azurite import AZ, Azurite, az_env
from support.manager import ManagerProcess


@pytest.fixture(scope="module")
def azure_deployment(
    pull_manager: ManagerProcess,
    moto: MotoServer,
    azurite: Azurite,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[PullDeployment]:
    root = tmp_path_factory.mktemp("azure")
    key_file = root / "account-key"
    key_file.write_text(azurite.key + "\n")
    key_file.chmod(0o600)
    config = {
        "azure": {
            "account": azurite.account,
            "key_file": str(key_file),
            "blob_endpoint": azurite.url,
        }
    }
    found = start_agent(pull_manager, moto, root, config)
    yield found
    found.agent.stop()


@pytest.fixture
def aworld(
    pull_manager: ManagerProcess, azure_deployment: PullDeployment, tmp_path: Path
) -> Iterator[World]:
    w = make_world(pull_manager, azure_deployment, tmp_path)
    yield w
    w.close()


def _debug_az(world: World, tmp_path: Path, *lines: str) -> subprocess.CompletedProcess[str]:
    """One ``alien debug`` session running several az commands (a session each would add
    seconds of az start-up for nothing)."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {"HOME": str(home), "PATH": f"{AZ.parent}:{os.environ.get('PATH', '')}"}
    return world.debug("sh", "-ec", "\n".join(lines), env=env, timeout=300)


def test_az_creates_uploads_lists_and_downloads_blobs_through_the_agent(
    aworld: World, azurite: Azurite, tmp_path: Path
) -> None:
    container = f"logs-{secrets.token_hex(3)}"
    payload = tmp_path / "payload.bin"
    payload.write_bytes(secrets.token_bytes(6 * 1024 * 1024 + 123))
    back = tmp_path / "back.bin"
    env_dump = tmp_path / "env.json"
    result = _debug_az(
        aworld,
        tmp_path,
        f"az storage container create -n {container} -o none",
        f"az storage blob upload -c {container} -n 'dir/report one.bin' -f {payload} -o none",
        f"az storage blob list -c {container} --query '[].name' -o tsv",
        f"az storage blob download -c {container} -n 'dir/report one.bin' -f {back} -o none",
        f'python3 -c \'import json, os; json.dump(dict(os.environ), open("{env_dump}", "w"))\'',
    )
    assert result.returncode == 0, result.stderr
    assert "dir/report one.bin" in result.stdout.splitlines()
    assert back.read_bytes() == payload.read_bytes()
    assert f"Azure storage account {azurite.account} (blobs)" in result.stderr

    # The child held a key of the session's, never the account's.
    env = json.loads(env_dump.read_text())
    connection = env["AZURE_STORAGE_CONNECTION_STRING"]
    assert azurite.key not in connection and f"AccountName={azurite.account};" in connection
    assert env["AZURE_CONFIG_DIR"].startswith(str(aworld.runtime_dir))

    requests = aworld.requests(aworld.latest_session()["id"])
    targets = [r["target"] for r in requests]
    assert f"azure/blob:PUT /{container}?restype=container" in targets
    assert all(t.startswith("azure/blob:") for t in targets)
    assert all(r["outcome"] == "succeeded" for r in requests), requests


def test_the_sessions_key_is_worthless_at_the_account_itself(
    aworld: World, azurite: Azurite, tmp_path: Path
) -> None:
    """The dummy key the child holds signs nothing Azure (here Azurite) accepts: only the
    session's loopback endpoint takes it, and only while the session lasts."""
    dump = tmp_path / "connection"
    result = _debug_az(aworld, tmp_path, f'printf %s "$AZURE_STORAGE_CONNECTION_STRING" > {dump}')
    assert result.returncode == 0, result.stderr
    parts = dict(p.split("=", 1) for p in dump.read_text().strip(";").split(";"))
    direct = (
        f"DefaultEndpointsProtocol=http;AccountName={azurite.account};"
        f"AccountKey={parts['AccountKey']};BlobEndpoint={azurite.url};"
    )
    listed = subprocess.run(
        [str(AZ), "storage", "container", "list", "--connection-string", direct, "-o", "none"],
        env=az_env(tmp_path / "az-home"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode != 0
    # Azurite's 403 AuthorizationFailure, which az words as a network rule (as for Azure).
    assert "blocked by network rules" in listed.stderr


def test_a_process_without_the_session_key_is_refused_by_the_endpoint(
    aworld: World, tmp_path: Path
) -> None:
    """Another local process can find the endpoint's port, but cannot sign for it."""
    script = (
        "import os, re, urllib.request, urllib.error\n"
        "connection = os.environ['AZURE_STORAGE_CONNECTION_STRING']\n"
        "endpoint = re.search('BlobEndpoint=([^;]+)', connection)[1]\n"
        "request = urllib.request.Request(endpoint + '/?comp=list', headers={\n"
        "    'x-ms-version': '2021-08-06', 'Authorization': 'SharedKey devstoreaccount1:AAAA'})\n"
        "try:\n"
        "    urllib.request.urlopen(request)\n"
        "except urllib.error.HTTPError as exc:\n"
        "    print(exc.code, exc.headers.get('x-ms-error-code'))\n"
    )
    result = aworld.debug("python3", "-c", script)
    assert result.returncode == 0, result.stderr
    status, code = result.stdout.split()
    assert status == "403" and code.startswith("AZURE_")
