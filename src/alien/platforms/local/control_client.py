"""Calls to one function process's control endpoint (the runtime's ``control_app``), over aiohttp.

A Unix socket address uses aiohttp's ``UnixConnector``; a ``tcp:`` one plain loopback HTTP. Every
call sends the endpoint's token as a bearer token; nothing here logs headers.

A ``ControlClient`` keeps its connections open (keep-alive) until :meth:`ControlClient.aclose`:
a command is one request on an already open socket, not a connect plus a client set-up. aiohttp
rather than httpx because this is the agent's hot path: with the dozens of connections that
concurrent commands keep open, httpcore's pool costs ~2 ms of CPU per request (it inspects every
pooled connection on each one) against ~0.1 ms here.

Transport failures are told apart by what they mean for the command: :class:`ControlUnreachable`
(the connection was never made: the command did not start, retrying elsewhere is safe) and
:class:`ControlLost` (the connection broke after the request went out: the handler may have run,
its outcome is unknown).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from alien.errors import PlatformError
from alien.platforms.dispatch import Invocation, ParamsSource, ResultDocument
from alien.platforms.local.endpoints import Endpoint
from alien.protocol.command_messages import CommandEnvelope, CommandResponse
from alien.protocol.wire import parse

RESULT_HEADER = "alien-result"
CONNECT_TIMEOUT = 5.0
ANSWER_MARGIN = 30.0
"""Seconds past the deadline to wait for the answer: the runtime stops a handler at its deadline
and then gives it a few seconds to unwind before answering ``HANDLER_TIMEOUT``."""
DEFAULT_READ_TIMEOUT = 30.0
MAX_CONNECTIONS = 256
"""Open connections per endpoint: one per command running there at once (the agent runs 64)."""
STREAM_CHUNK = 256 * 1024
"""Large params and result documents move in chunks of this size, never whole."""
KEEPALIVE_SECONDS = 2.0
"""Idle connections are dropped before the runtime's server drops them (uvicorn: after 5 s), so
a request never goes out on a connection the other side is closing."""


class ControlUnreachable(Exception):
    """The endpoint could not be connected to; the request was not delivered."""


class ControlLost(Exception):
    """The connection failed after the request was sent; the handler may have run."""


class ControlClient:
    """One endpoint's API: ``invoke``, ``cancel``, ``commands``."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._http: aiohttp.ClientSession | None = None

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            path = self.endpoint.unix_path
            options: dict[str, Any] = {
                "limit": MAX_CONNECTIONS,
                "keepalive_timeout": KEEPALIVE_SECONDS,
            }
            connector = (
                aiohttp.UnixConnector(path=path, **options)
                if path
                else aiohttp.TCPConnector(ssl=False, **options)
            )
            self._http = aiohttp.ClientSession(
                base_url=self.endpoint.base_url,
                connector=connector,
                headers={"authorization": f"Bearer {self.endpoint.token}"},
                skip_auto_headers=("User-Agent",),
            )
        return self._http

    async def aclose(self) -> None:
        """Close the open connections (the endpoint's process may be gone already)."""
        http, self._http = self._http, None
        if http is not None:
            await http.close()

    async def _request(
        self,
        method: str,
        url: str,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        *,
        spool_dir: Path | None = None,
        **kwargs: Any,
    ) -> tuple[int, dict[str, str], ResultDocument]:
        """``(status, headers, body)``; with ``spool_dir``, a result document's body is written
        to a file there instead of memory. Transport failures become ``ControlUnreachable`` /
        ``ControlLost``."""
        timeout = aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT, sock_read=read_timeout)
        try:
            async with self._session().request(method, url, timeout=timeout, **kwargs) as reply:
                headers = {k.lower(): v for k, v in reply.headers.items()}
                if spool_dir is not None and headers.get(RESULT_HEADER) == "document":
                    return reply.status, headers, await _spool(reply, spool_dir)
                return reply.status, headers, await reply.read()
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise ControlUnreachable(str(exc) or type(exc).__name__) from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise ControlLost(str(exc) or type(exc).__name__) from exc

    async def invoke(
        self,
        envelope: CommandEnvelope,
        params: ParamsSource | None = None,
        *,
        include_traceback: bool = False,
        spool_dir: Path | None = None,
    ) -> Invocation:
        """Run the command; ``params`` given as a file are streamed as they are (the file must
        hold a JSON object), and with ``spool_dir`` a large result document lands in a file
        there (the ``Invocation`` then names it) — so neither passes through memory whole."""
        head: dict[str, Any] = {
            "envelope": envelope.model_dump(mode="json"),
            "include_traceback": include_traceback,
        }
        body: bytes | AsyncIterator[bytes]
        if isinstance(params, Path):
            body = _body_with_params_file(head, params)
        else:
            if params is not None:
                head["params"] = params
            body = json.dumps(head, separators=(",", ":")).encode()
        remaining = (envelope.deadline - datetime.now(UTC)).total_seconds()
        status, headers, content = await self._request(
            "POST",
            "/v1/commands/invoke",
            max(remaining, 0.0) + ANSWER_MARGIN,
            spool_dir=spool_dir,
            data=body,
            headers={"content-type": "application/json"},
        )
        if headers.get(RESULT_HEADER) == "document":
            return Invocation(envelope.id, envelope.lease_id, document=content)
        assert isinstance(content, bytes)  # only documents are spooled
        _raise_for_error(status, content)
        response = parse(CommandResponse, content)
        return Invocation(envelope.id, envelope.lease_id, response=response)

    async def cancel(self, command_id: str) -> bool:
        status, _, content = await self._request("POST", f"/v1/commands/{command_id}/cancel")
        assert isinstance(content, bytes)
        if status == 404:
            return False
        _raise_for_error(status, content)
        return True

    async def commands(self) -> list[str]:
        status, _, content = await self._request("GET", "/v1/commands")
        assert isinstance(content, bytes)
        _raise_for_error(status, content)
        try:
            names = json.loads(content).get("commands")
        except (ValueError, AttributeError):
            names = None
        if not isinstance(names, list):
            raise PlatformError("the control endpoint answered without a command list")
        return [str(name) for name in names]


async def _body_with_params_file(head: dict[str, Any], params: Path) -> AsyncIterator[bytes]:
    """The invoke body ``{…head, "params": <the file's bytes>}``, read from the file a chunk at a
    time."""
    text = json.dumps(head, separators=(",", ":"))
    yield (text[:-1] + ',"params":').encode()
    with params.open("rb") as fh:
        while chunk := fh.read(STREAM_CHUNK):
            yield chunk
    yield b"}"


async def _spool(reply: aiohttp.ClientResponse, directory: Path) -> Path:
    """Write ``reply``'s body to a new 0600 file in ``directory``, a chunk at a time."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="result-", suffix=".json", dir=directory)
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            async for chunk in reply.content.iter_chunked(STREAM_CHUNK):
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def _raise_for_error(status: int, content: bytes) -> None:
    """Turn the endpoint's error body (``{"error": {code, message, field}}``) into an error."""
    if status < 400:
        return
    try:
        error = json.loads(content)["error"]
        code, message, field = str(error["code"]), str(error["message"]), error.get("field")
    except (ValueError, KeyError, TypeError):
        code, message, field = "PLATFORM_ERROR", f"HTTP {status}", None
    raise PlatformError(f"the control endpoint refused the call: {message}", code=code, field=field)
