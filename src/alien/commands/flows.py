"""What invoking a command takes, written once for the sync and the asyncio client (sans-I/O).

Each flow is a generator that yields :class:`Request` descriptions and is sent back the
response for each; the clients only execute requests. So "upload large params first,
create and wait in one request, keep waiting until the command ends, fetch a large result, turn a
failure into an exception" exists in one place, and the two flavours cannot drift apart.

Large payloads are invisible to callers: params over 256 KiB are uploaded with
``POST /v1/commands/payloads`` and referenced; a result that came back by reference is fetched
from its signed URL and checked against its SHA-256.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from alien.client.errors import error_from_body
from alien.commands.models import Command, CommandFailed
from alien.errors import AlienError, ValidationError

MAX_INLINE_BYTES = 256 * 1024
"""Params larger than this (compact JSON) go by reference (the manager's inline limit)."""
MAX_SERVER_WAIT = 60.0
"""The longest single wait the manager grants; longer waits are several requests."""
WAIT_SLACK = 15.0
"""Extra seconds a waiting request is given over its server-side wait before it counts as lost."""
RETRY_PAUSE = 0.5
"""Seconds between two tries of a :attr:`Request.retry_until` request the manager did not take."""


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    """A path on the manager (``/v1/…``), or an absolute URL (signed payload URLs)."""
    params: Mapping[str, Any] | None = None
    json: Any = None
    content: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float | None = None
    """Read timeout, for requests the server holds open; ``None``: the client's default."""
    authenticated: bool = True
    """Send the token (not to signed URLs: they carry their own authority)."""
    retry_until: float | None = None
    """A request that changes nothing (a wait): on a connection failure it is sent again, every
    :data:`RETRY_PAUSE` seconds, until this monotonic time (a manager restarting)."""
    when_lost: str | None = None
    """Said after "cannot reach the manager" when the retries ran out (what may still run)."""


class Response(Protocol):
    """What a flow reads of an answer (an ``httpx.Response``, or the sync client's
    :class:`~alien.commands.sync_http.Reply`)."""

    @property
    def status_code(self) -> int: ...

    @property
    def content(self) -> bytes: ...

    def json(self) -> Any: ...


Flow = Generator[Request, Response, Any]


def checked(response: Response) -> Response:
    """``response`` if it is a success, else the manager's error as an ``AlienError``."""
    if response.status_code >= 400:
        raise error_from_body(response.status_code, response.content)
    return response


def params_document(params: Mapping[str, Any] | None) -> bytes:
    """``params`` as compact UTF-8 JSON — the measure of the inline limit."""
    if params is not None and not isinstance(params, Mapping):
        raise ValidationError("params must be a JSON object (a mapping)", field="params")
    text = json.dumps(dict(params or {}), separators=(",", ":"), ensure_ascii=False)
    return text.encode()


def create_flow(
    *,
    deployment: str,
    command: str,
    params: Mapping[str, Any] | None,
    target: str | None,
    timeout: float,
    idempotency_key: str | None,
    wait: float,
) -> Flow:
    """Create a command (uploading large params first); with ``wait``, wait for it in the same
    request. Returns the :class:`Command` as answered."""
    document = params_document(params)
    body: dict[str, Any] = {"deployment": deployment, "command": command, "timeout": timeout}
    if len(document) > MAX_INLINE_BYTES:
        upload = yield Request(
            "POST",
            "/v1/commands/payloads",
            params={"deployment": deployment},
            content=document,
            headers={"content-type": "application/json"},
        )
        ref = checked(upload).json()
        body["params_ref"] = {"sha256": ref["sha256"], "size": ref["size"]}
    else:
        body["params"] = dict(params or {})
    if target is not None:
        body["target"] = target
    if idempotency_key is not None:
        body["idempotency_key"] = idempotency_key
    server_wait = min(wait, MAX_SERVER_WAIT)
    response = yield Request(
        "POST",
        "/v1/commands",
        params={"wait": _seconds(server_wait)} if server_wait > 0 else None,
        json=body,
        timeout=server_wait + WAIT_SLACK if server_wait > 0 else None,
    )
    return Command.model_validate(checked(response).json())


def wait_flow(command: Command, until: float) -> Flow:
    """Wait (long-polls, ≤ 60 s each) until ``command`` ended or the monotonic time ``until``."""
    while not command.ended:
        remaining = until - time.monotonic()
        if remaining <= 0:
            return command
        server_wait = min(remaining, MAX_SERVER_WAIT)
        response = yield Request(
            "GET",
            f"/v1/commands/{command.id}",
            params={"wait": _seconds(server_wait)},
            timeout=server_wait + WAIT_SLACK,
            retry_until=until,
            when_lost=(
                f"command {command.id} may still run, or have ended: alien commands get "
                f"{command.id} --wait"
            ),
        )
        command = Command.model_validate(checked(response).json())
    return command


def result_flow(command: Command) -> Flow:
    """The result of an ended command, fetched when it came by reference; raises
    :class:`CommandFailed` if the command did not succeed."""
    if not command.succeeded:
        raise CommandFailed(command)
    ref = command.result_ref
    if ref is None:
        return command.result
    response = checked((yield Request("GET", ref.url, authenticated=False, timeout=300.0)))
    content = response.content
    if len(content) != ref.size or hashlib.sha256(content).hexdigest() != ref.sha256:
        raise ValidationError(
            "the downloaded result does not match its size and sha256", field="result_ref"
        )
    return json.loads(content)


def run_flow(
    *,
    deployment: str,
    command: str,
    params: Mapping[str, Any] | None,
    target: str | None,
    timeout: float,
    idempotency_key: str | None,
) -> Flow:
    """Create and wait until it ended (at most ``timeout`` seconds — its deadline — plus a
    little); return the ended :class:`Command` (``WAIT_TIMEOUT`` if it somehow did not end)."""
    until = time.monotonic() + timeout + 5.0
    created = yield from create_flow(
        deployment=deployment,
        command=command,
        params=params,
        target=target,
        timeout=timeout,
        idempotency_key=idempotency_key,
        wait=timeout,
    )
    ended = yield from wait_flow(created, until)
    if not ended.ended:
        raise AlienError(
            f"command {ended.id} did not end within {timeout:g} s (it is {ended.state})",
            code="WAIT_TIMEOUT",
            details={"command_id": ended.id, "state": ended.state},
        )
    return ended


def invoke_flow(**request: Any) -> Flow:
    """:func:`run_flow`, then the result (or :class:`CommandFailed`)."""
    ended = yield from run_flow(**request)
    return (yield from result_flow(ended))


def _seconds(value: float) -> str:
    """A wait in seconds for a query string (rounded up to milliseconds, never 0)."""
    return f"{max(math.ceil(value * 1000) / 1000, 0.001):g}"
