"""Going out through the environment's HTTP proxy, as other clients do.

A customer's network — and many an engineer's — often lets outbound traffic leave only through a
proxy named in ``HTTPS_PROXY``/``HTTP_PROXY`` (``NO_PROXY`` exempting hosts); httpx and
``websockets`` honour them, so the clients we wrote ourselves must too: the debug tunnel's
WebSocket client, ``alien debug``'s calls to the manager (``client/lite.py``), and every
connection the pull-model agent makes on a session's behalf (AWS, Google and Kubernetes APIs,
the HTTP and ``CONNECT`` egress: :func:`http_proxy`). Which variable applies follows the library
each replaces (:func:`proxy_for`). A TLS connection, and every WebSocket, goes through a
``CONNECT`` tunnel (:meth:`Proxy.connect`); a plain-HTTP call is sent to the proxy itself in
absolute form, as httpx does. Only ``http://`` proxies are supported (the ``CONNECT`` request is
sent in clear, then TLS to the destination runs inside the tunnel), with Basic credentials from
the proxy URL's user info. Those credentials never appear in a message or a ``repr``: a proxy is
named by ``http://host:port`` only (:class:`ProxyError`, ``str(proxy)``).

The variables are read as ``urllib.request`` reads them on Linux (lower case before upper case,
``NO_PROXY`` entries matching a host or a domain suffix, ``*`` bypassing everything), by a few
lines of our own: importing ``urllib.request`` (with ``http.client`` and ``email``) cost
``alien debug`` 15-20 ms of a set-up budget of 0.5 s.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

MAX_ANSWER_HEAD = 16 * 1024
READ_SIZE = 4096


# Which variables name the proxy, in order: a WebSocket-specific one first, then HTTPS's (the
# websockets library's order); httpx's for plain HTTP calls.
_WEBSOCKET_SCHEMES = {True: ("wss", "https"), False: ("ws", "https", "http")}
_HTTP_SCHEMES = {True: ("https", "all"), False: ("http", "all")}


def proxy_for(secure: bool, host: str, *, websocket: bool = True) -> str | None:
    """The proxy URL to reach ``host`` through, from the environment; ``None``: go direct."""
    proxies = environment_proxies()
    if _bypassed(host, proxies.get("no", "")):
        return None
    schemes = (_WEBSOCKET_SCHEMES if websocket else _HTTP_SCHEMES)[secure]
    return next((proxies[scheme] for scheme in schemes if proxies.get(scheme)), None)


def http_proxy(secure: bool, host: str, port: int | None = None) -> Proxy | None:
    """The proxy an HTTP client (httpx) would reach ``host`` through — ``HTTPS_PROXY`` for TLS,
    ``HTTP_PROXY`` for plain HTTP, then ``ALL_PROXY``; ``None`` (go direct) when none is set or
    ``NO_PROXY`` exempts ``host`` (or ``host:port``, for a port not the scheme's default: an
    entry may name one). Raises :class:`ProxyError` for a proxy URL we cannot use."""
    default = port in (None, 443 if secure else 80) or ":" in host  # an IPv6 literal: no port
    url = proxy_for(secure, host if default else f"{host}:{port}", websocket=False)
    return None if url is None else Proxy.parse(url)


def environment_proxies() -> dict[str, str]:
    """Scheme (``http``, ``https``, ``all``, ``no``…) → value of its ``<scheme>_proxy``
    variable; the lower-case spelling wins, and one set empty removes the scheme. As in
    ``urllib.request``, ``HTTP_PROXY`` (upper case) is ignored in a CGI request
    (``REQUEST_METHOD`` set), where a client could have set it through a ``Proxy:`` header."""
    proxies: dict[str, str] = {}
    for name, value in os.environ.items():
        if value and name[-6:].lower() == "_proxy" and name != name.lower():
            proxies[name[:-6].lower()] = value
    if "REQUEST_METHOD" in os.environ:
        proxies.pop("http", None)
    for name, value in os.environ.items():
        if name[-6:] == "_proxy":
            if value:
                proxies[name[:-6]] = value
            else:
                proxies.pop(name[:-6], None)
    return proxies


def _bypassed(host: str, no_proxy: str) -> bool:
    """Whether ``NO_PROXY``'s comma-separated entries exempt ``host`` (``host:port`` too)."""
    if no_proxy == "*":
        return True
    host = host.lower()
    hostonly = host.rpartition(":")[0] if host.count(":") == 1 else host
    for entry in no_proxy.split(","):
        name = entry.strip().lstrip(".").lower()
        if not name:
            continue
        if name in (host, hostonly) or host.endswith("." + name) or hostonly.endswith("." + name):
            return True
    return False


class ProxyError(OSError):
    """The proxy could not be reached, or refused what it was asked: a connection failure to the
    caller, whose message names the proxy (``http://host:port``, never its credentials)."""


@dataclass(frozen=True)
class Proxy:
    """An ``http://`` proxy's address, and the ``Proxy-Authorization`` its URL's user info
    makes (``None`` without credentials; kept out of ``repr``)."""

    host: str
    port: int
    authorization: str | None = field(default=None, repr=False)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @classmethod
    def parse(cls, url: str) -> Proxy:
        """Raises :class:`ProxyError` (a connection failure to the caller) for what we cannot
        use."""
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme != "http":
            raise ProxyError(f"only http:// proxies are supported, not {parts.scheme}://")
        try:
            host, port = parts.hostname, parts.port or 80
        except ValueError:  # a port that is not a number: say so without echoing the URL
            host = None
        if not host:
            raise ProxyError("the proxy URL names no host and port we can use")
        authorization = None
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            authorization = "Basic " + base64.b64encode(pair.encode()).decode()
        return cls(host, port, authorization)

    @property
    def headers(self) -> list[tuple[str, str]]:
        """What a request sent to the proxy carries for it."""
        return [] if self.authorization is None else [("proxy-authorization", self.authorization)]

    def refused(self, what: str, answer: str) -> ProxyError:
        return ProxyError(f"the proxy {self} refused {what}: {answer}")

    async def open(self) -> socket.socket:
        """A connected (non-blocking) socket to the proxy itself."""
        loop = asyncio.get_running_loop()
        sock: socket.socket | None = None
        try:
            infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
            family, kind, proto, _, address = infos[0]
            sock = socket.socket(family, kind, proto)
            sock.setblocking(False)
            await loop.sock_connect(sock, address)
        except OSError as exc:
            if sock is not None:
                sock.close()
            raise ProxyError(f"could not reach the proxy {self}: {type(exc).__name__}") from None
        return sock

    async def connect(self, host: str, port: int) -> socket.socket:
        """A connected socket to ``host:port`` through a ``CONNECT`` tunnel (raises
        :class:`ProxyError` when the proxy is unreachable or refuses)."""
        sock = await self.open()
        loop = asyncio.get_running_loop()
        try:
            await self.tunnel(
                host,
                port,
                lambda data: loop.sock_sendall(sock, data),
                lambda: loop.sock_recv(sock, READ_SIZE),
            )
        except BaseException:
            sock.close()
            raise
        return sock

    async def tunnel(
        self,
        host: str,
        port: int,
        send: Callable[[bytes], Awaitable[Any]],
        receive: Callable[[], Awaitable[bytes]],
    ) -> None:
        """Ask for a tunnel to ``host:port`` on a connection to the proxy (``send``,
        ``receive``: its I/O); returns once the proxy agreed (a 2xx answer)."""
        try:
            await send(_connect_request(host, port, self.authorization))
            answer = b""
            while b"\r\n\r\n" not in answer:
                chunk = await receive()
                if not chunk or len(answer) > MAX_ANSWER_HEAD:
                    raise ProxyError(f"the proxy {self} closed the connection or sent no answer")
                answer += chunk
        except OSError as exc:
            if isinstance(exc, ProxyError):
                raise
            raise ProxyError(f"the proxy {self} broke off: {type(exc).__name__}") from None
        status_line = answer.split(b"\r\n", 1)[0].decode("latin-1")
        status = status_line.split(" ", 2)
        if len(status) < 2 or not status[0].startswith("HTTP/1.") or not _success(status[1]):
            raise self.refused(f"the tunnel to {host}:{port}", status_line)


def _success(status: str) -> bool:
    return len(status) == 3 and status.isdigit() and status[0] == "2"


async def connect_via(proxy: str, host: str, port: int) -> socket.socket:
    """A connected socket to ``host:port`` through the ``http://`` proxy ``proxy`` (raises
    :class:`ProxyError` when the proxy is unreachable or refuses)."""
    return await Proxy.parse(proxy).connect(host, port)


async def open_connection(
    host: str, port: int, proxy: Proxy | None, **options: Any
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """``asyncio.open_connection(host, port, **options)``, through ``proxy``'s ``CONNECT`` tunnel
    when one is given (TLS, if ``options`` ask for it, then runs inside the tunnel: pass
    ``server_hostname``)."""
    if proxy is None:
        return await asyncio.open_connection(host, port, **options)
    return await asyncio.open_connection(sock=await proxy.connect(host, port), **options)


def describe(exc: BaseException) -> str:
    """A connection failure as a caller tells it: a :class:`ProxyError`'s own message (it names
    the proxy and what it answered), the exception's type otherwise."""
    return str(exc) if isinstance(exc, ProxyError) else type(exc).__name__


def _connect_request(host: str, port: int, authorization: str | None) -> bytes:
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
    if authorization is not None:
        lines.append(f"Proxy-Authorization: {authorization}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
