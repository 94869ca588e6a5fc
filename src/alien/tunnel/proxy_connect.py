"""Reaching the manager through the environment's HTTP proxy (``CONNECT``), as other clients do.

A customer's network often lets outbound traffic leave only through a proxy named in
``HTTPS_PROXY``/``HTTP_PROXY`` (``NO_PROXY`` exempting hosts); the agent's HTTP calls (httpx) and
its control channel (``websockets``) honour them, so its debug tunnel — dialled by our own
WebSocket client — must too. Only ``http://`` proxies are supported (the ``CONNECT`` request is
sent in clear, then TLS to the manager runs inside the tunnel), with Basic credentials from the
proxy URL's user info.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import urllib.request
from urllib.parse import unquote, urlsplit

MAX_ANSWER_HEAD = 16 * 1024


def proxy_for(secure: bool, host: str) -> str | None:
    """The proxy URL to reach ``host`` through, from the environment; ``None``: go direct."""
    if urllib.request.proxy_bypass(host):
        return None
    proxies = urllib.request.getproxies()
    # The order the websockets library uses: a WebSocket-specific proxy first, then HTTPS's.
    schemes = ("wss", "https") if secure else ("ws", "https", "http")
    return next((proxies[scheme] for scheme in schemes if proxies.get(scheme)), None)


async def connect_via(proxy: str, host: str, port: int) -> socket.socket:
    """A connected socket to ``host:port`` through the ``http://`` proxy ``proxy`` (raises
    ``OSError`` when the proxy is unreachable or refuses)."""
    parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    if parts.scheme != "http":
        raise OSError(f"only http:// proxies are supported, not {parts.scheme}://")
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(parts.hostname, parts.port or 80, type=socket.SOCK_STREAM)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, address)
        await loop.sock_sendall(sock, _connect_request(host, port, parts.username, parts.password))
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


def _connect_request(host: str, port: int, user: str | None, password: str | None) -> bytes:
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
    if user is not None:
        token = base64.b64encode(f"{unquote(user)}:{unquote(password or '')}".encode()).decode()
        lines.append(f"Proxy-Authorization: Basic {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
