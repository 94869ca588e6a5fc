"""An ``Upstream`` that forwards requests to an HTTP(S) destination, within an allowlist.

This is the pull-model agent's HTTP egress: requests arrive over the tunnel and leave from inside
the customer's environment, so the agent must never become an open relay. Only hosts on the
allowlist are reached; everything else is refused before any connection is made.

Requests and responses stream through unchanged: the request target is sent byte for byte (a
re-encoded path would break a signature), only hop-by-hop headers are dropped, the response body
is passed on as received (no decompression).
"""

from __future__ import annotations

import logging
import re
import ssl
from collections.abc import Iterable

import httpx

from alien.errors import Forbidden, ValidationError
from alien.protocol.http_exchange import (
    HOP_BY_HOP,
    Body,
    RequestHead,
    ResponseHead,
    UpstreamResponse,
)
from alien.tunnel.errors import UpstreamUnreachable

log = logging.getLogger(__name__)

DEFAULT_PORTS = {"http": 80, "https": 443}

_LABELS = r"(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.?"
_PATTERN = re.compile(
    rf"(?:(?P<name>(?:\*\.)?{_LABELS})|\[(?P<ipv6>[0-9a-f:.]+)\])(?::(?P<port>\d{{1,5}}))?"
)
_HOST_HEADER = re.compile(rf"(?:{_LABELS}|\[[0-9a-f:.]+\])(?::\d{{1,5}})?", re.IGNORECASE)


def end_to_end(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """``headers`` without hop-by-hop ones (including those the ``Connection`` header names)."""
    pairs = list(headers)
    named = {
        token.strip().lower()
        for name, value in pairs
        if name.lower() == "connection"
        for token in value.split(",")
    }
    skip = HOP_BY_HOP | named
    return [(name, value) for name, value in pairs if name.lower() not in skip]


class HostAllowlist:
    """Which ``host[:port]`` destinations may be reached.

    A pattern is a host name or IP address, optionally with ``:port``; ``*.example.com`` matches
    any subdomain of example.com (not example.com itself). Without a port a pattern matches only
    the scheme's default port, so allowing ``api.example.com`` does not open its admin port.
    """

    def __init__(self, patterns: Iterable[str]) -> None:
        self._rules = [_parse_pattern(p, f"allow.{i}") for i, p in enumerate(patterns)]
        if not self._rules:
            raise ValidationError("the allowlist is empty: nothing could be reached", field="allow")

    def allows(self, scheme: str, host: str, port: int | None) -> bool:
        host = host.lower().rstrip(".")
        port = port if port is not None else DEFAULT_PORTS[scheme]
        for pattern, allowed_port in self._rules:
            if port != (allowed_port if allowed_port is not None else DEFAULT_PORTS[scheme]):
                continue
            if host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:])):
                return True
        return False


def _parse_pattern(pattern: str, field: str) -> tuple[str, int | None]:
    """``(host, port or None)`` of an allowlist entry; IPv6 addresses are written ``[::1]``."""
    match = _PATTERN.fullmatch(pattern.strip().lower())
    if match is None:
        raise ValidationError(f"bad allowlist entry {pattern!r}", field=field)
    host = (match["name"] or match["ipv6"]).rstrip(".")
    port = int(match["port"]) if match["port"] else None
    if port is not None and not 0 < port < 65536:
        raise ValidationError(f"bad port in allowlist entry {pattern!r}", field=field)
    return host, port


def endpoint_base(url: str, field: str) -> str:
    """``scheme://host[:port]`` of a configured endpoint; anything more is refused."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        raise ValidationError(f"{url!r} is not a URL", field=field) from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValidationError("expected an http(s) URL", field=field)
    if parsed.userinfo or parsed.query or parsed.fragment or parsed.path not in ("", "/"):
        raise ValidationError("expected scheme://host[:port] only", field=field)
    return f"{parsed.scheme}://{parsed.netloc.decode()}"


def forwarding_client(*, verify: ssl.SSLContext | bool = True) -> httpx.AsyncClient:
    """An HTTP client that adds no headers of its own and never follows redirects (a redirect
    could lead outside the allowlist): what arrives is what the caller sent. ``verify``: how
    https destinations are checked (a context trusting a private CA, say)."""
    client = httpx.AsyncClient(
        verify=verify,
        timeout=httpx.Timeout(30.0, read=300.0, write=300.0),
        follow_redirects=False,
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
    )
    client.headers.clear()
    return client


class ForwardingUpstream:
    """Forward requests to ``scheme://<Host header><target>`` (or to an absolute-form target).

    ``allow`` lists the reachable destinations (see :class:`HostAllowlist`); ``verify`` is how
    https destinations are checked (see :func:`forwarding_client`). Refusals raise
    ``Forbidden`` (field ``host``); a destination that cannot be reached raises
    :class:`UpstreamUnreachable`; both become error responses where the request entered.
    """

    def __init__(
        self,
        allow: Iterable[str],
        *,
        scheme: str = "https",
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        if scheme not in DEFAULT_PORTS:
            raise ValidationError("scheme must be http or https", field="scheme")
        self._allow = HostAllowlist(allow)
        self._scheme = scheme
        self._client = forwarding_client(verify=verify)

    async def send(self, head: RequestHead, body: Body) -> UpstreamResponse:
        url, target, headers = self._destination(head)
        if not self._allow.allows(url.scheme, url.host, url.port):
            raise Forbidden(f"{url.host} is not an allowed destination", field="host")
        has_body = head.get("content-length") not in (None, "0") or head.get("transfer-encoding")
        request = self._client.build_request(
            head.method,
            url,
            headers=headers,
            content=body if has_body else None,
            extensions={"target": target.encode("latin-1")},
        )
        try:
            response = await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise UpstreamUnreachable(
                f"could not reach {url.scheme}://{url.netloc.decode()}: {type(exc).__name__}",
                field="host",
            ) from None
        return UpstreamResponse(
            head=ResponseHead.create(
                response.status_code, end_to_end(response.headers.multi_items())
            ),
            body=response.aiter_raw(),
            close=response.aclose,
        )

    def _destination(self, head: RequestHead) -> tuple[httpx.URL, str, list[tuple[str, str]]]:
        """The URL to reach, the target to send byte for byte, and the headers to send."""
        headers = end_to_end(head.headers)
        try:
            if head.target.startswith(("http://", "https://")):
                url = httpx.URL(head.target)
                target = url.raw_path.decode("ascii")
                headers = [(k, v) for k, v in headers if k != "host"]
            elif head.target.startswith("/"):
                host = head.get("host") or ""
                if not _HOST_HEADER.fullmatch(host):
                    raise ValidationError("the request has no valid Host header", field="host")
                url = httpx.URL(f"{self._scheme}://{host}{head.target}")
                target = head.target
            else:
                raise ValidationError("the request target is not a path or URL", field="target")
        except httpx.InvalidURL:
            raise ValidationError("the request does not name a valid URL", field="host") from None
        if url.scheme not in DEFAULT_PORTS or not url.host or url.userinfo:
            raise ValidationError("the request does not name an http(s) host", field="host")
        return url, target, headers

    async def aclose(self) -> None:
        await self._client.aclose()
