"""``LocalDispatcher``: commands for functions running on this machine (``alien dev``, the agent).

Implements :class:`alien.platforms.dispatch.CommandDispatcher` by calling the control endpoint of
the **current** version of the function — the one its ingress serves — as published by the
platform: ``LocalDispatcher(platform)`` in the platform's own process, or
``LocalDispatcher(AreaControls(area))`` from another one (``alien dev command``).

During an update the old version keeps the commands it already runs: its graceful stop waits for
them (up to the grace period), and their answers come back on the connection that started them.
A new command that races the switch and finds the old endpoint closed is retried once on the
version current by then, like the ingress does for requests; a connection that breaks after the
command was sent is not retried (the handler may have run) but reported as
``FUNCTION_UNAVAILABLE`` with ``details.outcome == "unknown"``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from alien.platforms.dispatch import (
    Invocation,
    ParamsSource,
    ResultOffload,
    function_unavailable,
)
from alien.platforms.local.control_client import ControlClient, ControlLost, ControlUnreachable
from alien.platforms.local.endpoints import Endpoint
from alien.protocol.command_messages import CommandEnvelope, CommandResponse
from alien.protocol.wire import parse

log = logging.getLogger(__name__)

LOCAL_DEPLOYMENT = "dep_local"
DIRECT_RESPONSE_URL = "http://localhost/direct-invocation"
"""A direct invocation is answered on its own connection; the envelope's ``response_url`` is
required by the wire format and unused."""


def direct_envelope(
    command: str,
    params: dict[str, Any],
    *,
    timeout: float,
    deployment_id: str = LOCAL_DEPLOYMENT,
) -> CommandEnvelope:
    """An envelope for a command invoked directly, with no manager and no lease to keep
    (``alien dev command``): fresh ids, one attempt, the deadline ``timeout`` seconds away.

    Raises ``ValidationError`` naming the bad part (the command name, params over the inline
    limit, ...).
    """
    deadline = datetime.now(UTC) + timedelta(seconds=timeout)
    return parse(
        CommandEnvelope,
        {
            "id": f"cmd_{secrets.token_hex(12)}",
            "deployment_id": deployment_id,
            "command": command,
            "params": params,
            "lease_id": f"lse_{secrets.token_hex(12)}",
            "lease_expires_at": deadline,
            "attempt": 1,
            "max_attempts": 1,
            "deadline": deadline,
            "response_url": DIRECT_RESPONSE_URL,
        },
    )


class ControlSource(Protocol):
    """Where the current control endpoints are: ``LocalPlatform`` or ``AreaControls``."""

    def control_endpoints(self) -> dict[str, Endpoint]: ...


class LocalDispatcher:
    """Invoke, cancel and list commands of the functions ``source`` runs.

    ``offload`` stores results too large to travel inline (see ``CommandDispatcher``); a call's
    own ``offload`` takes precedence (the agent's differs per command: its signed upload URL).
    ``spool_dir``: where such result documents are written as they arrive, so the offload gets a
    file rather than the whole document in memory. It keeps connections to the endpoints open
    between commands: close it (``aclose`` or ``async with``) when done.
    """

    def __init__(
        self,
        source: ControlSource,
        *,
        offload: ResultOffload | None = None,
        spool_dir: Path | None = None,
    ) -> None:
        self.source = source
        self.offload = offload
        self.spool_dir = spool_dir
        self._running: dict[str, Endpoint] = {}
        """Command id → the endpoint running it: a cancel must reach the version that runs it,
        which is not the current one any more once an update switched."""
        self._clients: dict[Endpoint, ControlClient] = {}
        """One client (with its open connections) per endpoint in use; see ``_client``."""
        self._closing: set[asyncio.Task[None]] = set()

    def _client(self, endpoint: Endpoint) -> ControlClient:
        """The endpoint's client; clients of endpoints neither current nor running a command
        any more (a replaced version, a crashed process) are closed on the way."""
        client = self._clients.get(endpoint)
        if client is None:
            self._close_unused()
            client = self._clients[endpoint] = ControlClient(endpoint)
        return client

    def _close_unused(self) -> None:
        live = set(self.source.control_endpoints().values()) | set(self._running.values())
        for endpoint in [e for e in self._clients if e not in live]:
            stale = self._clients.pop(endpoint)
            task = asyncio.create_task(stale.aclose())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        """Close every open connection to the functions' control endpoints."""
        clients, self._clients = list(self._clients.values()), {}
        await asyncio.gather(*(client.aclose() for client in clients), *self._closing)

    async def __aenter__(self) -> LocalDispatcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _current(self, function: str) -> Endpoint | None:
        return self.source.control_endpoints().get(function)

    def _require(self, function: str) -> Endpoint:
        endpoint = self._current(function)
        if endpoint is None:
            running = ", ".join(sorted(self.source.control_endpoints())) or "none"
            raise function_unavailable(
                function,
                f"it is not running with commands enabled (functions taking commands: {running})",
            )
        return endpoint

    async def invocation(
        self,
        function: str,
        envelope: CommandEnvelope,
        params: ParamsSource | None = None,
        *,
        include_traceback: bool = False,
    ) -> Invocation:
        """What the handler answered, a large result still as its document (see ``invoke``)."""
        endpoint = self._require(function)
        try:
            return await self._call(function, endpoint, envelope, params, include_traceback)
        except ControlUnreachable as exc:
            retry = self._current(function)
            if retry is None or retry == endpoint:
                raise function_unavailable(
                    function, f"its control endpoint refused: {exc}"
                ) from exc
            log.info("function %s switched versions; invoking %s there", function, envelope.id)
        try:
            return await self._call(function, retry, envelope, params, include_traceback)
        except ControlUnreachable as exc:
            raise function_unavailable(function, f"its control endpoint refused: {exc}") from exc

    async def _call(
        self,
        function: str,
        endpoint: Endpoint,
        envelope: CommandEnvelope,
        params: ParamsSource | None,
        include_traceback: bool,
    ) -> Invocation:
        self._running[envelope.id] = endpoint
        try:
            return await self._client(endpoint).invoke(
                envelope, params, include_traceback=include_traceback, spool_dir=self.spool_dir
            )
        except ControlLost as exc:
            raise function_unavailable(
                function,
                f"the connection broke while {envelope.id} ran ({exc}); its outcome is unknown",
                unknown_outcome=True,
            ) from exc
        finally:
            if self._running.get(envelope.id) is endpoint:
                del self._running[envelope.id]

    async def invoke(
        self,
        function: str,
        envelope: CommandEnvelope,
        params: ParamsSource | None = None,
        *,
        offload: ResultOffload | None = None,
        include_traceback: bool = False,
    ) -> CommandResponse:
        invocation = await self.invocation(
            function, envelope, params, include_traceback=include_traceback
        )
        return await invocation.finish(offload or self.offload)

    async def cancel(self, function: str, command_id: str) -> bool:
        endpoint = self._running.get(command_id) or self._current(function)
        if endpoint is None:
            return False
        try:
            return await self._client(endpoint).cancel(command_id)
        except (ControlUnreachable, ControlLost):
            return False  # its process is gone: nothing runs there any more

    async def known_commands(self) -> dict[str, list[str]]:
        endpoints = sorted(self.source.control_endpoints().items())

        async def names(endpoint: Endpoint) -> list[str] | None:
            try:
                return await self._client(endpoint).commands()
            except (ControlUnreachable, ControlLost):
                return None

        listed = await asyncio.gather(*(names(endpoint) for _, endpoint in endpoints))
        return {
            fid: found
            for (fid, _), found in zip(endpoints, listed, strict=True)
            if found is not None
        }
