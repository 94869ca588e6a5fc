"""Serve the function's ASGI app with uvicorn, inside the runtime's event loop.

The runtime, not uvicorn, owns the process's signals (it must also stop the trigger loops), so
uvicorn's own signal handlers are switched off and the runtime sets ``should_exit`` itself. The
socket is bound here first: with port 0 the kernel picks a free port and the runtime reports it
in its ready line. A Unix socket (the app's and the command control endpoint's, as the platform
grants them) is bound here too, rather than by uvicorn, because uvicorn would leave it 0666: here
it is 0600 before it listens.
(The local platform's ingress has its own small variant of this server class: the layers may
not share code across sdk/platforms.)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn

from alien.errors import PlatformError
from alien.sdk.runtime import http_limits
from alien.sdk.runtime.address import ListenAddress


def _bind(host: str, port: int, variable: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP: asyncio sets TCP_NODELAY on accepted sockets only then, and
    # without it small request/response pairs stall ~40 ms on Nagle + delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise PlatformError(
            f"cannot listen on {host}:{port}: {exc.strerror}", field=variable
        ) from exc
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def _bind_unix(path: Path, variable: str) -> socket.socket:
    """A listening Unix socket at ``path``, 0600 before it accepts anyone.

    A stale socket left by a killed process is replaced; any other file there is refused rather
    than deleted. Between ``bind`` and ``chmod`` nobody can connect yet (it does not listen).
    """
    try:
        if stat.S_ISSOCK(path.lstat().st_mode):
            path.unlink()
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        os.chmod(path, 0o600)
    except OSError as exc:
        sock.close()
        raise PlatformError(f"cannot listen on {path}: {exc.strerror}", field=variable) from exc
    sock.listen(128)
    sock.setblocking(False)
    return sock


class _Server(uvicorn.Server):
    """uvicorn that leaves signals to the runtime and says when it accepts connections."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()


class HttpServer:
    """One uvicorn server on its own socket; ``start`` returns once it accepts connections.

    ``variable`` names the setting ``address`` came from (in errors). ``internal`` marks a
    server of the runtime's own (no access log, no lifespan: it is not the app).
    """

    def __init__(
        self, app: Any, address: ListenAddress, *, variable: str, internal: bool = False
    ) -> None:
        self.app = app
        self.requested = address
        self.variable = variable
        self.internal = internal
        self._port = address.port
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def address(self) -> ListenAddress:
        """Where it listens: the socket, or the host with the port actually bound."""
        if self.requested.is_unix:
            return self.requested
        return ListenAddress(host=self.requested.host, port=self._port)

    def _listen(self) -> socket.socket:
        if self.requested.path is not None:
            return _bind_unix(self.requested.path, self.variable)
        sock = _bind(self.requested.host or "127.0.0.1", self.requested.port, self.variable)
        self._port = int(sock.getsockname()[1])
        return sock

    async def start(self) -> ListenAddress:
        sock = self._listen()
        path = self.requested.path
        config = uvicorn.Config(
            self.app,
            uds=str(path) if path is not None else None,  # only names it in uvicorn's log
            log_config=None,  # the runtime configured logging already
            lifespan="off" if self.internal else "auto",
            access_log=not self.internal,
            proxy_headers=not self.internal,
            # Only the platform can connect to a 0600 socket, and a Unix peer has no address
            # to check: its X-Forwarded-* (the ingress's) are trusted; on TCP, loopback's.
            forwarded_allow_ips="*" if path is not None else "127.0.0.1",
            # A response's head and body in one send; callers that never finish a request
            # head, or pile up connections, cannot hold the server (see http_limits).
            http=http_limits.HeadDeadlineHttp,
            limit_concurrency=http_limits.CONCURRENCY_LIMIT,
        )
        server = _Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]), name="uvicorn")
        ready = asyncio.create_task(server.ready.wait())
        await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if not server.ready.is_set():
            sock.close()
            # uvicorn reports a failed lifespan startup with sys.exit(); the app logged why.
            raise PlatformError("the app failed to start (lifespan startup); see the log above")
        self._server, self._task = server, task
        return self.address

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish, run the app's lifespan shutdown."""
        server, task = self._server, self._task
        if server is None or task is None:
            return
        self._server = self._task = None
        server.should_exit = True
        await task
        if self.requested.path is not None:
            self.requested.path.unlink(missing_ok=True)
