"""A debug session for tests: private directory, session keys, the loopback proxy process (see
``debug_proxy_runner.py``) and the child environment for the aws CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from debug_moto import MotoServer

from alien.debug.env import aws_command, aws_env
from alien.debug.session_dir import SessionDir
from alien.debug.session_keys import SessionKeys

REGION = "eu-west-1"
SESSION_ID = "dbg_e2e"
ALLOWED_SERVICES = ["iam", "s3", "sqs", "sts"]
AWS = str(Path(sys.executable).with_name("aws"))


@dataclass
class DebugSession:
    url: str
    keys: SessionKeys
    files: SessionDir
    process: subprocess.Popen[str]
    env: dict[str, str]

    def aws(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the real aws CLI as the session's child process would be run."""
        return subprocess.run(
            aws_command([AWS, *args], self.url),
            env=env or self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def peak_rss_kib(self) -> int:
        """The proxy process's peak resident memory so far (VmHWM)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        raise AssertionError("no VmHWM in /proc status")

    def stop(self) -> None:
        """Close the runner's stdin (it shuts down at EOF) and remove the session directory."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        finally:
            self.files.cleanup()


def start_session(moto: MotoServer, root: Path) -> DebugSession:
    """Start a proxy process for a new session against ``moto``; it is listening on return."""
    files = SessionDir.create(SESSION_ID, root=root)
    keys = SessionKeys.generate()
    config = {
        "manager_key_id": moto.manager_key_id,
        "manager_secret": moto.manager_secret,
        "region": REGION,
        "role_arn": moto.role_arn,
        "session_id": SESSION_ID,
        "endpoint": moto.url,
        "allowed_services": ALLOWED_SERVICES,
        "session_key_id": keys.aws_access_key_id,
        "session_secret": keys.aws_secret_access_key,
        "spool_dir": str(files.path),
    }
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("debug_proxy_runner.py"))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(json.dumps(config) + "\n")
    process.stdin.flush()
    line = process.stdout.readline()  # the runner prints its URL once listening, or exits
    if not line:
        process.kill()
        files.cleanup()
        raise RuntimeError("the proxy runner exited before listening")
    url = json.loads(line)["url"]
    env = aws_env(files, endpoint_url=url, region=REGION, keys=keys).apply()
    return DebugSession(url=url, keys=keys, files=files, process=process, env=env)
