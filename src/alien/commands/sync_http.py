"""The synchronous ``CommandsClient``'s HTTP: the standard library's ``http.client``, with
connections kept alive and shared safely between threads.

Why not httpx here: a command round trip is one small request, and httpx's per-request work
(URL merging, header and cookie models, auth and redirect machinery) cost about 2 ms of client
CPU per ``invoke`` on the benchmark machine — a p50 of 10.3 ms against 8.5 ms for the same
requests over ``http.client``. What the flows (:mod:`alien.commands.flows`) need back is a
status, the body and its JSON (:class:`Reply`), which ``http.client`` gives without the rest.

What httpx does that this does not: proxies from the environment. When one applies to the
manager's URL (:func:`proxied`), the client keeps using httpx. TLS uses the platform's default
context (system CAs, ``SSL_CERT_FILE``), verifying the host name.

A connection whose peer closed it while it sat idle (uvicorn drops idle keep-alive connections
after 5 s) is noticed before it is used again — readable with nothing pending means the peer's
EOF — so a request is never written onto a socket that is already closing; any other transport
failure closes the connection and raises :class:`TransportError`, never retried here.
"""

from __future__ import annotations

import http.client
import json
import select
import ssl
import threading
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

Origin = tuple[str, str, int]
MAX_IDLE = 8
"""Idle connections kept per origin (one per thread using the client at once, usually)."""


class TransportError(Exception):
    """The request could not be made, or its answer could not be read."""


@dataclass(frozen=True)
class Reply:
    """A whole response: what the flows read of it."""

    status_code: int
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)


def proxied(url: str) -> bool:
    """Whether the environment routes ``url`` through a proxy (then httpx is used instead)."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    if parts.scheme not in proxies and "all" not in proxies:
        return False
    return not urllib.request.proxy_bypass(parts.hostname or "")


class SyncHttp:
    """Requests to ``base_url`` (paths) or to absolute URLs (signed payload URLs)."""

    def __init__(self, base_url: str, headers: Mapping[str, str], timeout: float) -> None:
        parts = urlsplit(base_url)
        self._base = _origin(parts.scheme, parts.hostname, parts.port)
        self._prefix = parts.path.rstrip("/")
        self._headers = dict(headers)
        self._timeout = timeout
        self._idle: dict[Origin, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()
        self._tls: ssl.SSLContext | None = None

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Reply:
        """One exchange; ``timeout`` is the read timeout (connecting uses the client's)."""
        origin, target = self._where(url)
        if params:
            target += ("&" if "?" in target else "?") + urlencode(params, doseq=True)
        out = {**self._headers, **(headers or {})}
        body = content
        if json_body is not None:
            body = json.dumps(json_body, separators=(",", ":")).encode()
            out["Content-Type"] = "application/json"
        conn = self._checkout(origin)
        try:
            if conn.sock is None:
                conn.connect()
            conn.sock.settimeout(timeout or self._timeout)  # type: ignore[union-attr]
            conn.request(method, target, body=body, headers=out)
            response = conn.getresponse()
            reply = Reply(response.status, response.read())
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise TransportError(str(exc) or type(exc).__name__) from exc
        if response.will_close:
            conn.close()
        else:
            self._checkin(origin, conn)
        return reply

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()

    def _where(self, url: str) -> tuple[Origin, str]:
        if url.startswith("/"):
            return self._base, self._prefix + url
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return _origin(parts.scheme, parts.hostname, parts.port), target

    def _checkout(self, origin: Origin) -> http.client.HTTPConnection:
        with self._lock:
            idle = self._idle.get(origin, [])
            while idle:
                conn = idle.pop()
                if _usable(conn):
                    return conn
                conn.close()
        scheme, host, port = origin
        if scheme == "https":
            if self._tls is None:
                self._tls = ssl.create_default_context()
            return http.client.HTTPSConnection(host, port, timeout=self._timeout, context=self._tls)
        return http.client.HTTPConnection(host, port, timeout=self._timeout)

    def _checkin(self, origin: Origin, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(origin, [])
            if len(idle) < MAX_IDLE:
                idle.append(conn)
                return
        conn.close()


def _origin(scheme: str, host: str | None, port: int | None) -> Origin:
    if scheme not in ("http", "https") or not host:
        raise TransportError(f"not an http(s) URL: {scheme}://{host}")
    return scheme, host, port or (443 if scheme == "https" else 80)


def _usable(conn: http.client.HTTPConnection) -> bool:
    """An idle connection is usable while the peer has not closed it (nothing to read yet)."""
    sock = conn.sock
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable
