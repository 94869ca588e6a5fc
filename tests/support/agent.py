"""``AgentSocket``: the agent side of ``/v1/agent/connect`` for tests (sync ``websockets``).

Messages are plain dicts on this side; ``expect`` reads until a message of the wanted type
arrives (or fails with what came instead), so tests state what they wait for, not how long.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from typing import Any

from websockets.sync.client import ClientConnection, connect


class AgentSocket:
    def __init__(
        self,
        ws_base_url: str,
        token: str,
        *,
        instance: str | None = None,
        open_timeout: float = 10.0,
    ) -> None:
        """``instance``: the ``Alien-Agent-Instance`` header to send (none by default)."""
        headers = {"Authorization": f"Bearer {token}"}
        if instance is not None:
            headers["Alien-Agent-Instance"] = instance
        self._stack = ExitStack()
        self.conn: ClientConnection = self._stack.enter_context(
            connect(
                ws_base_url + "/v1/agent/connect",
                additional_headers=headers,
                open_timeout=open_timeout,
            )
        )

    def send(self, message: dict[str, Any] | str) -> None:
        self.conn.send(message if isinstance(message, str) else json.dumps(message))

    def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        return json.loads(self.conn.recv(timeout=timeout))

    def expect(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        message = self.recv(timeout)
        assert message["type"] == kind, f"expected {kind!r}, got {message}"
        return message

    def hello(self, agent_version: str = "test-agent/1") -> dict[str, Any]:
        """Send ``hello`` and return the ``welcome``."""
        self.send({"v": 1, "type": "hello", "agent_version": agent_version})
        return self.expect("welcome")

    def report(self, event: dict[str, Any] | None = None, **extra: Any) -> None:
        body: dict[str, Any] = {"v": 1, "type": "status", **extra}
        if event is not None:
            body["event"] = event
        self.send(body)

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> AgentSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
