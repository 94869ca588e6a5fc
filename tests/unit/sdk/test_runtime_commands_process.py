"""Commands in the real function process: ready line, token hygiene, graceful stop."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

TOKEN = "process-token-" + "z" * 40
APP = textwrap.dedent(
    """
    import os
    from pathlib import Path
    import alien

    @alien.command("env")
    def env() -> dict:
        return {"token": os.environ.get("ALIEN_CONTROL_TOKEN"), "pid": os.getpid()}

    @alien.command("hold")
    def hold(marker: str, release: str, ctx: alien.CommandContext) -> str:
        Path(marker).touch()
        while not Path(release).exists():
            if ctx.wait_cancelled_blocking(0.02):
                ctx.raise_if_cancelled()
        return "finished"
    """
)
READY = re.compile(r"^alien-runtime: ready function=api control=(unix:\S+)$")


class Runtime:
    """A commands-only runtime process (no app, no triggers), output collected by a thread."""

    def __init__(self, code_dir: Path, socket_path: Path) -> None:
        env = {
            "PATH": os.environ["PATH"],
            # The alien under test, not the one installed in the environment:
            "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
            "ALIEN_FUNCTION": "api",
            "ALIEN_ENTRYPOINT": "app:app",
            "ALIEN_COMMANDS_ENABLED": "1",
            "ALIEN_CONTROL_ADDRESS": f"unix:{socket_path}",
            "ALIEN_CONTROL_TOKEN": TOKEN,
            "ALIEN_BINDINGS": "{}",
            "PYTHONUNBUFFERED": "1",
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "alien.sdk.runtime"],
            cwd=code_dir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.control: str | None = None
        self._changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                if match := READY.match(line.rstrip("\n")):
                    self.control = match[1]
                self._changed.notify_all()
        with self._changed:
            self.lines.append("<eof>")
            self._changed.notify_all()

    def wait_for(self, text: str, timeout: float = 20) -> None:
        with self._changed:
            found = self._changed.wait_for(
                lambda: any(text in line for line in self.lines), timeout
            )
        assert found, "\n".join(self.lines)


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text(APP)
    rt = Runtime(code, tmp_path / "api.sock")
    yield rt
    if rt.proc.poll() is None:
        rt.proc.kill()
        rt.proc.wait()


def _invoke(socket_path: str, command: str, params: dict[str, Any]) -> dict[str, Any]:
    deadline = (datetime.now(UTC) + timedelta(seconds=30)).isoformat()
    envelope = {
        "id": "cmd_p1",
        "deployment_id": "dep_1",
        "command": command,
        "params": params,
        "lease_id": "lse_p1",
        "lease_expires_at": deadline,
        "attempt": 1,
        "max_attempts": 1,
        "deadline": deadline,
        "response_url": "http://localhost/unused",
    }
    with httpx.Client(
        transport=httpx.HTTPTransport(uds=socket_path),
        base_url="http://control",
        headers={"authorization": f"Bearer {TOKEN}"},
        timeout=30,
    ) as http:
        reply = http.post("/v1/commands/invoke", json={"envelope": envelope})
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_the_ready_line_names_the_control_socket_and_the_token_stays_hidden(
    runtime: Runtime, tmp_path: Path
) -> None:
    runtime.wait_for("alien-runtime: ready")
    assert runtime.control == f"unix:{tmp_path / 'api.sock'}"
    answer = _invoke(str(tmp_path / "api.sock"), "env", {})
    assert answer["ok"] and answer["result"]["token"] is None  # popped before app code ran
    assert answer["result"]["pid"] == runtime.proc.pid
    runtime.proc.send_signal(signal.SIGTERM)
    assert runtime.proc.wait(20) == 0
    assert not (tmp_path / "api.sock").exists()
    assert all(TOKEN not in line for line in runtime.lines)


def test_sigterm_lets_a_running_command_finish_and_answer(runtime: Runtime, tmp_path: Path) -> None:
    runtime.wait_for("alien-runtime: ready")
    marker, release = tmp_path / "started", tmp_path / "release"
    answers: list[dict[str, Any]] = []
    caller = threading.Thread(
        target=lambda: answers.append(
            _invoke(
                str(tmp_path / "api.sock"), "hold", {"marker": str(marker), "release": str(release)}
            )
        )
    )
    caller.start()
    for _ in range(400):
        if marker.exists():
            break
        threading.Event().wait(0.025)
    assert marker.exists(), "\n".join(runtime.lines)
    runtime.proc.send_signal(signal.SIGTERM)
    runtime.wait_for("SIGTERM received")
    # Stopping: no new connection is accepted, but the running command is still waited for.
    assert runtime.proc.poll() is None
    release.touch()
    caller.join(20)
    assert answers and answers[0]["ok"] and answers[0]["result"] == "finished"
    assert runtime.proc.wait(20) == 0
    assert json.dumps(answers[0]).count(TOKEN) == 0
