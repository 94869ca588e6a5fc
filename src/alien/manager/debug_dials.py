"""The agent legs a manager process waits for: ``tunnel_open`` told a pull-model deployment's
agent to dial its leg of a debug session's tunnel, with a one-time credential; the leg that
arrives — a WebSocket (``manager/debug_tunnel.py``) or an HTTP leg
(``manager/debug_http_leg.py``) — claims the dial with it. In memory, as the legs themselves.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets

from starlette.requests import HTTPConnection

from alien.errors import Unauthenticated
from alien.manager.api.deps import app_held
from alien.tunnel import TunnelConnection
from alien.tunnel.transport import MessageTransport

AGENT_DIAL_TIMEOUT = 10.0
"""Seconds the agent has, after ``tunnel_open``, to dial its leg of a session's tunnel."""
CREDENTIAL_HEADER = "alien-tunnel-credential"


class Dial:
    """One agent handshake the manager waits for: whose, which credential (its hash), and the
    agent's leg once it came — a tunnel connection the manager opens streams on, or, spliced,
    the bare transport (its handshake then waits for ``released`` before it returns)."""

    def __init__(
        self, session_id: str, deployment_id: str, credential: str, *, splice: bool = False
    ) -> None:
        self.session_id = session_id
        self.deployment_id = deployment_id
        self.digest = hashlib.sha256(credential.encode()).digest()
        self.splice = splice
        loop = asyncio.get_running_loop()
        self.arrived: asyncio.Future[TunnelConnection | MessageTransport] = loop.create_future()
        self.released = asyncio.Event()


class AgentDials:
    """The agent legs this manager process asked for and is waiting for (in memory).

    Each credential is random, good for one handshake of one session's deployment, and only
    until the CLI's handshake stops waiting for it (:data:`AGENT_DIAL_TIMEOUT`).
    """

    def __init__(self) -> None:
        self._waiting: dict[tuple[str, bytes], Dial] = {}

    def expect(
        self, session_id: str, deployment_id: str, *, splice: bool = False
    ) -> tuple[str, Dial]:
        credential = secrets.token_urlsafe(32)
        dial = Dial(session_id, deployment_id, credential, splice=splice)
        self._waiting[(session_id, dial.digest)] = dial
        return credential, dial

    def forget(self, dial: Dial) -> None:
        self._waiting.pop((dial.session_id, dial.digest), None)

    def claim(self, session_id: str, deployment_id: str | None, credential: str | None) -> Dial:
        """The dial this handshake answers (used up); ``Unauthenticated`` when there is none."""
        digest = hashlib.sha256((credential or "").encode()).digest()
        dial = self._waiting.get((session_id, digest))
        if (
            dial is None
            or not hmac.compare_digest(dial.digest, digest)
            or dial.deployment_id != deployment_id
            or dial.arrived.done()
        ):
            raise Unauthenticated(
                f"no tunnel of debug session {session_id} is expected with this credential "
                "from this deployment",
                field="credential",
            )
        self.forget(dial)
        return dial


def dials_of(conn: HTTPConnection) -> AgentDials:
    return app_held(conn, "debug_agent_dials", AgentDials)
