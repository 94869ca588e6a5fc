"""What the debug-session tests act on, and how they run ``alien debug`` as a real process."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from debug_moto import MotoServer

from support.api import ApiClient
from support.manager import ManagerProcess
from support.names import unique

REGION = "eu-west-1"
ALLOWED_SERVICES = ["s3", "sts"]
BIN = Path(sys.executable).parent
AWS = str(BIN / "aws")


def manager_env(moto: MotoServer) -> dict[str, str]:
    """The manager's own AWS identity, through boto3's default chain (environment variables)."""
    return {
        "AWS_ACCESS_KEY_ID": moto.manager_key_id,
        "AWS_SECRET_ACCESS_KEY": moto.manager_secret,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }


def register_aws(
    admin: ApiClient, moto: MotoServer, group: str, name: str, services: list[str] | None = None
) -> dict[str, Any]:
    response = admin.post(
        "/v1/aws-deployments",
        json={
            "group": group,
            "name": name,
            "region": REGION,
            "role_arn": moto.role_arn,
            "endpoint_url": moto.url,
            "allowed_services": services or ALLOWED_SERVICES,
        },
    )
    assert response.status_code == 201, response.text
    return response.json()


@dataclass
class World:
    manager: ManagerProcess
    admin: ApiClient
    debugger_key: str
    ref: str
    deployment_id: str
    runtime_dir: Path
    clients: list[ApiClient] = field(default_factory=list)

    def client(self, token: str | None) -> ApiClient:
        client = self.admin.with_token(token)
        self.clients.append(client)
        return client

    @property
    def session_root(self) -> Path:
        """Where ``alien debug`` makes its session directories (XDG_RUNTIME_DIR is ours)."""
        return self.runtime_dir / "alien-debug"

    def session_dirs(self) -> list[Path]:
        root = self.session_root
        return (
            sorted(p for p in root.iterdir() if p.name.startswith("dbg-")) if root.is_dir() else []
        )

    def cli_env(self, **extra: str) -> dict[str, str]:
        """The engineer's environment: manager URL and API key, no AWS settings of its own."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ALIEN_"))}
        env.update(
            ALIEN_MANAGER_URL=self.manager.url,
            ALIEN_TOKEN=self.debugger_key,
            XDG_RUNTIME_DIR=str(self.runtime_dir),
            PATH=f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}",
            PYTHONUNBUFFERED="1",
            COLUMNS="250",
        )
        env.update(extra)
        return env

    def debug_argv(
        self,
        *command: str,
        reason: str = "e2e test",
        ref: str | None = None,
        options: tuple[str, ...] = (),
    ) -> list[str]:
        argv = [
            sys.executable,
            "-m",
            "alien.cli.main",
            "debug",
            ref or self.ref,
            "--reason",
            reason,
            *options,
        ]
        return [*argv, "--", *command] if command else argv

    def debug(
        self,
        *command: str,
        timeout: float = 120,
        env: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``alien debug <ref> --reason … -- command…`` to completion (``env``: variables
        added to the engineer's environment)."""
        return subprocess.run(
            self.debug_argv(*command, **kwargs),
            env=self.cli_env(**(env or {})),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start_debug(self, *command: str, **kwargs: Any) -> subprocess.Popen[str]:
        """Start ``alien debug`` with the command's stdout piped (read it line by line)."""
        return subprocess.Popen(
            self.debug_argv(*command, **kwargs),
            env=self.cli_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def sessions(self) -> list[dict[str, Any]]:
        response = self.admin.get("/v1/debug-sessions", params={"deployment": self.deployment_id})
        assert response.status_code == 200, response.text
        return response.json()["items"]

    def latest_session(self) -> dict[str, Any]:
        sessions = self.sessions()
        assert sessions, "no session was opened"
        return sessions[0]

    def requests(self, session_id: str) -> list[dict[str, Any]]:
        response = self.admin.get(f"/v1/debug-sessions/{session_id}/requests")
        assert response.status_code == 200, response.text
        return response.json()["items"]

    def close(self) -> None:
        for client in self.clients:
            client.close()
        self.admin.close()


def make_world(manager: ManagerProcess, moto: MotoServer, tmp_path: Path) -> World:
    admin = manager.client()
    group = unique("grp")
    admin.create_group(group)
    name = unique("acme")
    dep = register_aws(admin, moto, group, name)["deployment"]
    key = admin.post("/v1/api-keys", json={"name": "engineer", "role": "debugger"})
    assert key.status_code == 201, key.text
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    return World(
        manager=manager,
        admin=admin,
        debugger_key=key.json()["key"],
        ref=f"{group}/{name}",
        deployment_id=dep["id"],
        runtime_dir=runtime,
    )


MiB = 1024 * 1024

_CALLER_TWICE = """
import sys, boto3
sts = boto3.client("sts")
print(sts.get_caller_identity()["Arn"], flush=True)
sys.stdin.readline()
print(sts.get_caller_identity()["Arn"], flush=True)
"""


def restarted_mid_command(world: World) -> dict[str, Any]:
    """Under ``alien debug``, a command asks who it is, the manager is restarted (it must have
    been started with a pinned ``port``: it comes back where the CLI looks), and the command
    asks again: both answers must be the same, the command exit 0, and the CLI say it
    reconnected. Returns the session (closed)."""
    process = world.start_debug("python3", "-c", _CALLER_TWICE)
    assert process.stdout is not None and process.stdin is not None
    first = process.stdout.readline().strip()
    assert first.startswith("arn:aws:sts::"), process.stderr and process.stderr.read()
    world.manager.restart()  # SIGTERM: the tunnel drops with it; the session stays active
    process.stdin.write("again\n")
    process.stdin.flush()
    out, err = process.communicate(timeout=90)
    assert process.returncode == 0, err
    assert out.strip() == first
    assert "reconnecting" in err and "tunnel reconnected" in err
    session = world.latest_session()
    assert session["state"] == "closed" and session["exit_code"] == 0
    return session


def pinned(manager: ManagerProcess) -> ManagerProcess:
    """Start ``manager`` and keep its port for every restart."""
    manager.start()
    manager.port = int(manager.url.rsplit(":", 1)[1])
    return manager


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(MiB):
            digest.update(chunk)
    return digest.hexdigest()


def s3_round_trip(world: World, tmp_path: Path, *, size_mib: int, bucket: str) -> dict[str, Any]:
    """In one ``alien debug`` session, the real ``aws`` CLI: ``s3 mb``, ``cp`` up, ``ls``, ``cp``
    down. Checks the bytes came back unchanged and the session audited both directions and the
    operations; returns the session."""
    big = tmp_path / "big.bin"
    with big.open("wb") as handle:
        for _ in range(size_mib):
            handle.write(os.urandom(MiB))
    back = tmp_path / "back.bin"
    script = textwrap.dedent(
        f"""
        set -e
        aws s3 mb s3://{bucket}
        aws s3 cp {big} s3://{bucket}/dir/big.bin
        aws s3 ls s3://{bucket}/dir/
        aws s3 cp s3://{bucket}/dir/big.bin {back}
        """
    )
    result = world.debug("bash", "-c", script, timeout=180)
    assert result.returncode == 0, result.stderr
    assert "big.bin" in result.stdout and str(size_mib * MiB) in result.stdout
    assert sha256_of(back) == sha256_of(big)
    session = world.latest_session()
    assert session["bytes_in"] >= size_mib * MiB and session["bytes_out"] >= size_mib * MiB
    operations = {r["details"]["operation"] for r in world.requests(session["id"])}
    assert {"CreateBucket", "ListObjectsV2", "GetObject"} <= operations
    assert operations & {"PutObject", "UploadPart"}
    return session


SIGNED_CHUNK_CLIENT = Path(__file__).with_name("signed_chunk_client.py")


def signed_chunk_uploads(world: World, *, bucket: str) -> dict[str, Any]:
    """In one ``alien debug`` session, S3 PUTs with signed chunks (``STREAMING-AWS4-HMAC-SHA256-
    PAYLOAD``, with and without a trailing checksum), as the Java and Go SDKs send them over
    plain HTTP, each read back: what was stored is what was sent; and one whose body was changed
    after it was signed, refused by the loopback proxy and never stored. Returns the session."""
    result = world.debug("python3", str(SIGNED_CHUNK_CLIENT), bucket, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.strip().splitlines())
    assert lines["plain"] == lines["plain-back"], result.stdout
    assert lines["trailer"] == lines["trailer-back"], result.stdout
    assert lines["forged"] == "403 SignatureDoesNotMatch False", result.stdout
    session = world.latest_session()
    puts = [r for r in world.requests(session["id"]) if r["details"]["operation"] == "PutObject"]
    # The forged upload: the proxy cut its stream, so it was abandoned upstream (502), and why.
    assert [r["details"]["status"] for r in puts] == [200, 200, 502]
    assert "not signed with the debug session's key" in puts[2]["details"]["error"], puts[2]
    return session
