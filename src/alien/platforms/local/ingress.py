"""The loopback ingress of one public function: a stable port in front of changing processes.

Function processes come and go (crash restarts, releases, ``alien dev`` reloads) and each listens
on a port of its own; clients must not notice. The ingress owns the port clients use for the
whole life of the platform and forwards to whichever process is current (see ``proxy``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from collections.abc import Iterator

import uvicorn

from alien.errors import PlatformError
from alien.platforms.local.proxy import Backend, ProxyApp


class PortInUse(PlatformError):
    """The port asked for is held by another process. Its own type, because nothing in the app
    can free it: ``alien dev`` gives up at its first start instead of waiting for changes."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(f"port {host}:{port} is already in use", field="port")
        self.host = host
        self.port = port


def bind_listener(host: str, port: int) -> socket.socket:
    """Bind a listening TCP socket; ``port=0`` picks a free one.

    Binding here (not inside uvicorn) means the port is known, and held, before anything is
    reported to the user, and a busy port is a clear error rather than a log line from a task.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP: asyncio sets TCP_NODELAY on accepted sockets only then, and
    # without it small request/response pairs stall ~40 ms on Nagle + delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(host, port) from exc
        raise PlatformError(
            f"port {host}:{port} cannot be bound: {exc.strerror}", field="port"
        ) from exc
    sock.setblocking(False)
    return sock


class _Server(uvicorn.Server):
    """uvicorn that leaves signals alone and says when it accepts connections.

    ``serve()`` normally installs SIGINT/SIGTERM handlers; signals belong to whoever runs the
    platform (``alien dev``, the agent), which stops the ingress itself. (The function runtime
    has its own small variant: the layers may not share code across sdk/platforms.)
    """

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()


class Ingress:
    """Listener + proxy for one function. ``start`` binds, ``switch`` reroutes, ``close`` ends."""

    def __init__(self, function: str, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.function = function
        self.host = host
        self.requested_port = port
        self.proxy = ProxyApp(function)
        self._socket: socket.socket | None = None
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise PlatformError(f"ingress for {self.function} is not started", field="function")
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def backend(self) -> Backend | None:
        return self.proxy.backend

    async def start(self) -> None:
        if self._server is not None:
            return
        sock = bind_listener(self.host, self.requested_port)
        config = uvicorn.Config(
            self.proxy,
            lifespan="off",
            log_config=None,  # leave the host process's logging alone
            access_log=False,
            server_header=False,  # the backend's own headers pass through unchanged
            date_header=False,
            # The ingress is where requests enter: a caller's X-Forwarded-* must not become the
            # client address or scheme the app is told (uvicorn trusts them from 127.0.0.1).
            proxy_headers=False,
            timeout_graceful_shutdown=5,
        )
        server = _Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]), name=f"ingress:{self.function}")
        ready = asyncio.create_task(server.ready.wait())
        await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if not server.ready.is_set():
            sock.close()
            error = task.exception() if not task.cancelled() else None
            raise PlatformError(f"ingress for {self.function} failed to start: {error}")
        self._socket, self._server, self._task = sock, server, task
        self._port = int(sock.getsockname()[1])

    def switch(self, backend: Backend | None) -> Backend | None:
        """Send new requests to ``backend``; returns the previous backend (drain, then close)."""
        return self.proxy.switch(backend)

    async def close(self) -> None:
        """Stop accepting, let in-flight requests through the proxy finish, release the port."""
        server, task, sock = self._server, self._task, self._socket
        self._server, self._task, self._socket = None, None, None
        if server is not None and task is not None:
            server.should_exit = True
            await task
        if sock is not None:
            sock.close()
        backend = self.proxy.switch(None)
        if backend is not None:
            await backend.aclose()
