"""Reaching the manager through the environment's HTTP proxy, as other clients do.

A customer's network — and many an engineer's — often lets outbound traffic leave only through a
proxy named in ``HTTPS_PROXY``/``HTTP_PROXY`` (``NO_PROXY`` exempting hosts); httpx and
``websockets`` honour them, so the clients we wrote ourselves must too: the debug tunnel's
WebSocket client and ``alien debug``'s calls to the manager (``client/lite.py``). Which variable
applies follows the library each replaces (:func:`proxy_for`). A TLS connection, and every
WebSocket, goes through a ``CONNECT`` tunnel (:func:`connect_via`); a plain-HTTP call is sent to
the proxy itself in absolute form, as httpx does. Only ``http://`` proxies are supported (the
``CONNECT`` request is sent in clear, then TLS to the manager runs inside the tunnel), with Basic
credentials from the proxy URL's user info.

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
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

MAX_ANSWER_HEAD = 16 * 1024


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


@dataclass(frozen=True)
class Proxy:
    """An ``http://`` proxy's address, and the ``Proxy-Authorization`` its URL's user info
    makes (``None`` without credentials)."""

    host: str
    port: int
    authorization: str | None

    @classmethod
    def parse(cls, url: str) -> Proxy:
        """Raises ``OSError`` (a connection failure to the caller) for what we cannot use."""
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme != "http":
            raise OSError(f"only http:// proxies are supported, not {parts.scheme}://")
        if not parts.hostname:
            raise OSError(f"the proxy URL names no host: {parts.scheme}://{parts.netloc}")
        authorization = None
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            authorization = "Basic " + base64.b64encode(pair.encode()).decode()
        return cls(parts.hostname, parts.port or 80, authorization)


async def connect_via(proxy: str, host: str, port: int) -> socket.socket:
    """A connected socket to ``host:port`` through the ``http://`` proxy ``proxy`` (raises
    ``OSError`` when the proxy is unreachable or refuses)."""
    via = Proxy.parse(proxy)
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(via.host, via.port, type=socket.SOCK_STREAM)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, address)
        await loop.sock_sendall(sock, _connect_request(host, port, via.authorization))
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = await loop.sock_recv(sock, 4096)
            if not chunk or len(answer) > MAX_ANSWER_HEAD:
                raise OSError("the proxy closed the connection or sent no answer")
            answer += chunk
        status_line = answer.split(b"\r\n", 1)[0].decode("latin-1")
        status = status_line.split(" ", 2)
        if len(status) < 2 or not status[0].startswith("HTTP/1.") or status[1] != "200":
            raise OSError(f"the proxy refused the tunnel to {host}:{port}: {status_line}")
    except BaseException:
        sock.close()
        raise
    return sock


def _connect_request(host: str, port: int, authorization: str | None) -> bytes:
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
    if authorization is not None:
        lines.append(f"Proxy-Authorization: {authorization}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
