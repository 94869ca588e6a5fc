"""An ``Upstream`` that forwards requests to an HTTP(S) destination, within an allowlist.

This is the pull-model agent's HTTP egress: requests arrive over the tunnel and leave from inside
the customer's environment, so the agent must never become an open relay. Only hosts on the
allowlist are reached; everything else is refused before any connection is made.

The allowlist names hosts, but a name is only as good as its DNS: a vendor who controls the zone
of an allowed name (``*.vendor.example``) could point it at the agent's own loopback or at the
cloud's metadata service (the agent's credentials). So the agent resolves the name itself,
refuses addresses no name should lead to (:func:`internal_only`: loopback, link-local, the
metadata service, unspecified, multicast, reserved) unless the matching entry names that very
address, and connects to the address it checked, never to the name again (no DNS rebinding
between check and connection). Private ranges stay reachable by name — reaching internal hosts
is the point — which means a wildcard entry trusts its zone's DNS to name only hosts the
customer means to open.

Requests and responses stream through unchanged: the request target is sent byte for byte (a
re-encoded path would break a signature), only hop-by-hop headers are dropped, the response body
is passed on as received (no decompression).

Where the customer's network lets traffic out only through an HTTP proxy, requests go through the
one the environment names, exactly when httpx would send them there
(:func:`~alien.tunnel.proxy_connect.http_proxy`: ``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY``,
``NO_PROXY`` judged on the name the request gives). The DNS-rebinding defence holds through the
proxy: the ``CONNECT`` tunnel is asked for the checked address, not the name (TLS inside it
still names and verifies the host), and a plain-HTTP request is sent in absolute form to that
address, its ``Host`` header the original one — so the proxy never resolves a name the vendor may
control. A proxy that cannot be reached or refuses (a non-2xx answer to ``CONNECT``, ``407`` to a
plain request) is :class:`UpstreamUnreachable`, naming the proxy but never its credentials. A
plain request's other answers, ``403`` included, are passed on: they may be the destination's.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable

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
from alien.tunnel.proxy_connect import Proxy, ProxyError, http_proxy
from alien.tunnel.proxy_transport import proxied_transports

log = logging.getLogger(__name__)

DEFAULT_PORTS = {"http": 80, "https": 443}
PROXY_AUTHENTICATION_REQUIRED = 407

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"  # at most 63 characters, as DNS (and IDNA) allow
_LABELS = rf"(?:{_LABEL}\.)*{_LABEL}\.?"
_PATTERN = re.compile(
    rf"(?:(?P<name>(?:\*\.)?{_LABELS})|\[(?P<ipv6>[0-9a-f:.]+)\])(?::(?P<port>\d{{1,5}}))?"
)
_HOST_HEADER = re.compile(rf"(?:{_LABELS}|\[[0-9a-f:.]+\])(?::\d{{1,5}})?", re.IGNORECASE)

NOT_ALLOWED = "DESTINATION_NOT_ALLOWED"
CLOUD_METADATA: frozenset[ipaddress.IPv4Address | ipaddress.IPv6Address] = frozenset(
    {
        ipaddress.IPv6Address("fd00:ec2::254"),  # AWS's metadata service over IPv6 (in fc00::/7)
        ipaddress.IPv4Address("100.100.100.200"),  # Alibaba Cloud's (RAM role credentials)
        ipaddress.IPv4Address("168.63.129.16"),  # Azure's WireServer (the VM agent's channel)
    }
)
"""Clouds' metadata and host services at addresses not caught as link-local (169.254.169.254,
AWS's, Google's, Azure's and Oracle's IPv4 metadata service, is): an agent on such a cloud
reaches its credentials there."""
THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")
"""Connecting to 0.0.0.0 reaches the local host on Linux; the rest of 0/8 is never a host."""
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
"""The well-known NAT64 prefix (RFC 6052): DNS64 answers ``64:ff9b::a.b.c.d`` for a name with
only an IPv4 address, and the translator connects to ``a.b.c.d``."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]
"""``(host, port)`` → the addresses to reach it at (what ``getaddrinfo`` answers)."""


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses ``getaddrinfo`` gives ``host`` (in the loop's executor: it blocks)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def valid_authority(authority: str) -> bool:
    """Whether ``authority`` is an ASCII ``host[:port]`` (a name, or ``[IPv6]``): what a
    ``Host`` header or a CONNECT target may be. Anything else never reaches a resolver."""
    return _HOST_HEADER.fullmatch(authority) is not None


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address a connection to ``address`` ends up at, if it is an IPv6 form of one:
    IPv4-mapped (``::ffff:a.b.c.d``, the same socket), NAT64 (``64:ff9b::a.b.c.d``, the
    translator's), 6to4 (``2002:aabb:ccdd::/48``, tunnelled to it) or Teredo (``2001:0::/32``,
    its client's address). Otherwise ``None``."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    return address.teredo[1] if address.teredo is not None else None


def internal_only(address: IPAddress) -> bool:
    """Whether ``address`` is one no host name should lead to: this machine (loopback,
    unspecified, 0/8), link-local (the metadata service at 169.254.169.254 among them), the
    other clouds' metadata addresses (:data:`CLOUD_METADATA`), deprecated IPv6 site-local
    (``fec0::/10``), multicast, reserved or broadcast. An IPv6 form of an IPv4 address
    (:func:`embedded_ipv4`) is judged as that address: ``2002:a9fe:a9fe::`` is the metadata
    service, and a NAT64 address of a public host is as reachable as the host."""
    if isinstance(address, ipaddress.IPv6Address):
        address = embedded_ipv4(address) or address
    if isinstance(address, ipaddress.IPv4Address) and address in THIS_NETWORK:
        return True
    return (
        address.is_loopback
        or address.is_link_local
        or address.is_unspecified
        or address.is_multicast
        or address.is_reserved
        or address in CLOUD_METADATA
        or (isinstance(address, ipaddress.IPv6Address) and address.is_site_local)
    )


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
        return self._match(scheme, host, port) is not None

    def _match(self, scheme: str, host: str, port: int | None) -> str | None:
        """The host part of the first entry that allows the destination, or ``None``."""
        host = host.lower().rstrip(".")
        port = port if port is not None else DEFAULT_PORTS[scheme]
        for pattern, allowed_port in self._rules:
            if port != (allowed_port if allowed_port is not None else DEFAULT_PORTS[scheme]):
                continue
            if host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:])):
                return pattern
        return None

    async def address(self, scheme: str, host: str, port: int | None, resolve: Resolver) -> str:
        """The address to connect to for ``host``: the one its entry names if that entry is an
        IP address (the customer asked for exactly it), else the first ``resolve`` gives —
        provided none of them is :func:`internal_only`, since a name's DNS may lie about where
        it is. ``Forbidden`` (``DESTINATION_NOT_ALLOWED``) for a destination refused, by name
        or by address; ``UpstreamUnreachable`` for a name that does not resolve."""
        pattern = self._match(scheme, host, port)
        if pattern is None:
            raise not_allowed(host)
        try:
            return str(ipaddress.ip_address(pattern))  # the entry is the host: an address
        except ValueError:
            pass
        port = port if port is not None else DEFAULT_PORTS[scheme]
        try:
            found = [ipaddress.ip_address(a) for a in await resolve(host, port)]
        except (OSError, UnicodeError, ValueError) as exc:
            raise UpstreamUnreachable(
                f"could not resolve {host}: {type(exc).__name__}", field="host"
            ) from None
        if not found:
            raise UpstreamUnreachable(f"{host} has no address", field="host")
        for address in found:
            if internal_only(address):
                raise Forbidden(
                    f"{host} resolves to {address}, which only an allowlist entry naming that "
                    "address opens",
                    field="host",
                    code=NOT_ALLOWED,
                )
        return str(found[0])


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


def intersect_allowlists(first: Iterable[str], second: Iterable[str]) -> tuple[str, ...]:
    """The entries allowing what both lists allow (each list as :class:`HostAllowlist` reads
    it). An entry of one list is kept when an entry of the other allows all it allows: the same
    port, and the same host or a wildcard covering it. Entries of this language nest or are
    disjoint, so that is the exact intersection — but for an entry without a port (its scheme's
    default) beside one with a port, which is dropped: narrower, never wider."""
    ours = [(p, _parse_pattern(p, f"allow.{i}")) for i, p in enumerate(first)]
    theirs = [(p, _parse_pattern(p, f"allow.{i}")) for i, p in enumerate(second)]
    kept = [p for p, rule in ours if any(_covers(other, rule) for _, other in theirs)]
    kept += [p for p, rule in theirs if any(_covers(other, rule) for _, other in ours)]
    return tuple(dict.fromkeys(kept))


def _covers(wide: tuple[str, int | None], narrow: tuple[str, int | None]) -> bool:
    (wide_host, wide_port), (host, port) = wide, narrow
    if wide_port != port:
        return False
    if host == wide_host:
        return True
    # "*.a.b" allows every name ending ".a.b": "x.a.b", and "*.x.a.b"'s names too.
    return wide_host.startswith("*.") and host.endswith(wide_host[1:])


def not_allowed(host: str) -> Forbidden:
    return Forbidden(f"{host} is not an allowed destination", field="host", code=NOT_ALLOWED)


def destination(target: str) -> tuple[str, str, int | None] | None:
    """``(scheme, host, port)`` of an absolute-form request ``target``; ``None`` when it is no
    valid URL (then it names no API: the callers tell API calls from other egress by it)."""
    try:
        url = absolute_url(target)
    except ValidationError:
        return None
    return url.scheme, url.host, url.port


def absolute_url(target: str) -> httpx.URL:
    """``target`` parsed, its host readable: a malformed IDNA name (``xn--api-.example``) is
    refused like any other bad URL (httpx only fails on it when ``host`` is read)."""
    try:
        url = httpx.URL(target)
        url.host  # noqa: B018  # decodes the IDNA labels: raises for malformed ones
    except (httpx.InvalidURL, UnicodeError):
        raise ValidationError("the request does not name a valid URL", field="host") from None
    return url


def _pinned(
    url: httpx.URL,
    address: str,
    headers: list[tuple[str, str]],
    extensions: dict[str, object],
) -> tuple[httpx.URL, list[tuple[str, str]]]:
    """``url`` to be connected at ``address``, the destination still seeing its name: in
    ``Host`` and, over https, as the TLS server name the certificate is checked against. An https
    request also closes its connection after: httpx pools connections by address, and one
    verified for another name at that address must not carry it."""
    if all(name != "host" for name, _ in headers):
        headers = [("host", url.netloc.decode("ascii")), *headers]
    if url.scheme == "https":
        extensions["sni_hostname"] = url.raw_host.decode("ascii")
        headers = [*headers, ("connection", "close")]
    return url.copy_with(host=address), headers


def endpoint_url(url: str, field: str, *, path: bool = False) -> httpx.URL:
    """A configured endpoint: an http(s) URL with a host, no credentials, query or fragment,
    and no path unless ``path``; anything else is a ``ValidationError`` naming ``field``."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        raise ValidationError(f"{url!r} is not a URL", field=field) from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValidationError("expected an http(s) URL", field=field)
    extra = parsed.userinfo or parsed.query or parsed.fragment
    if extra or (not path and parsed.path not in ("", "/")):
        shape = "scheme://host[:port][/path]" if path else "scheme://host[:port]"
        raise ValidationError(f"expected {shape} only", field=field)
    return parsed


def endpoint_base(url: str, field: str) -> str:
    """``scheme://host[:port]`` of a configured endpoint; anything more is refused."""
    parsed = endpoint_url(url, field)
    return f"{parsed.scheme}://{parsed.netloc.decode()}"


def forwarding_client(
    *, verify: ssl.SSLContext | bool = True, proxy: Proxy | None = None
) -> httpx.AsyncClient:
    """An HTTP client that adds no headers of its own and never follows redirects (a redirect
    could lead outside the allowlist): what arrives is what the caller sent. ``verify``: how
    https destinations are checked (a context trusting a private CA, say); ``proxy``: the one
    every request goes through (``None``: direct — the environment's proxy variables are not
    read by httpx here, the caller picks the proxy with our rules)."""
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=16)
    transport: httpx.AsyncBaseTransport = httpx.AsyncHTTPTransport(verify=verify, limits=limits)
    mounts: dict[str, httpx.AsyncBaseTransport] = {}
    if proxy is not None:
        transport, mounts = proxied_transports(proxy, verify=verify, limits=limits)
    client = httpx.AsyncClient(
        transport=transport,  # with a transport given, httpx reads no proxy variables
        mounts=mounts,
        timeout=httpx.Timeout(30.0, read=300.0, write=300.0),
        follow_redirects=False,
    )
    client.headers.clear()
    return client


class ForwardingUpstream:
    """Forward requests to ``scheme://<Host header><target>`` (or to an absolute-form target).

    ``allow`` lists the reachable destinations (see :class:`HostAllowlist`); ``verify`` is how
    https destinations are checked (see :func:`forwarding_client`); ``resolve`` finds a name's
    addresses, which are screened and connected to (see the module docstring) — ``None`` for
    destinations the customer configured as endpoints (the caller picks none of them), which are
    connected to by name. Refusals raise ``Forbidden`` (field ``host``); a destination that
    cannot be reached, directly or through the environment's proxy, raises
    :class:`UpstreamUnreachable`; both become error responses where the request entered.
    """

    def __init__(
        self,
        allow: Iterable[str],
        *,
        scheme: str = "https",
        verify: ssl.SSLContext | bool = True,
        resolve: Resolver | None = system_resolver,
    ) -> None:
        if scheme not in DEFAULT_PORTS:
            raise ValidationError("scheme must be http or https", field="scheme")
        self._allow = HostAllowlist(allow)
        self._scheme = scheme
        self._resolve = resolve
        self._verify = verify
        self._clients: dict[Proxy | None, httpx.AsyncClient] = {}

    def _client(self, proxy: Proxy | None) -> httpx.AsyncClient:
        """The client going through ``proxy`` (made on first use; the environment seldom names
        more than one)."""
        client = self._clients.get(proxy)
        if client is None:
            client = self._clients[proxy] = forwarding_client(verify=self._verify, proxy=proxy)
        return client

    async def send(self, head: RequestHead, body: Body) -> UpstreamResponse:
        url, target, headers = self._destination(head)
        host, where = url.raw_host.decode("ascii"), f"{url.scheme}://{url.netloc.decode()}"
        extensions: dict[str, object] = {"target": target.encode("latin-1")}
        if self._resolve is None:
            if not self._allow.allows(url.scheme, host, url.port):
                raise not_allowed(host)
        else:
            address = await self._allow.address(url.scheme, host, url.port, self._resolve)
            url, headers = _pinned(url, address, headers, extensions)
        try:  # the proxy is judged on the name, as the request gave it
            proxy = http_proxy(url.scheme == "https", host, url.port)
        except ProxyError as exc:
            raise UpstreamUnreachable(f"could not reach {where}: {exc}", field="host") from None
        if proxy is not None and url.scheme == "http":
            # httpcore's forwarding to the proxy sends the "target" extension as it is: it must
            # be the absolute form, naming where the request is connected (the checked address).
            extensions["target"] = f"http://{url.netloc.decode()}{target}".encode("latin-1")
        client = self._client(proxy)
        has_body = head.get("content-length") not in (None, "0") or head.get("transfer-encoding")
        request = client.build_request(
            head.method,
            url,
            headers=headers,
            content=body if has_body else None,
            extensions=extensions,
        )
        try:
            response = await client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise UpstreamUnreachable(
                f"could not reach {where}: {_failure(exc, proxy)}", field="host"
            ) from None
        if proxy is not None and response.status_code == PROXY_AUTHENTICATION_REQUIRED:
            await response.aclose()  # the proxy's answer to a plain request: never the caller's
            refused = proxy.refused(f"the request to {where}", "407 Proxy Authentication Required")
            raise UpstreamUnreachable(f"could not reach {where}: {refused}", field="host")
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
        if head.target.startswith(("http://", "https://")):
            url = absolute_url(head.target)
            target = url.raw_path.decode("ascii")
            headers = [(k, v) for k, v in headers if k != "host"]
        elif head.target.startswith("/"):
            host = head.get("host") or ""
            if not valid_authority(host):
                raise ValidationError("the request has no valid Host header", field="host")
            url = absolute_url(f"{self._scheme}://{host}{head.target}")
            target = head.target
        else:
            raise ValidationError("the request target is not a path or URL", field="target")
        if url.scheme not in DEFAULT_PORTS or not url.host or url.userinfo:
            raise ValidationError("the request does not name an http(s) host", field="host")
        return url, target, headers

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()


def _failure(exc: httpx.HTTPError, proxy: Proxy | None) -> str:
    """Why a request failed: a proxy's refusal as it was said (the message names the proxy),
    otherwise the error's type, and the proxy the request went through if any."""
    if isinstance(exc, httpx.ProxyError):
        return str(exc)
    return type(exc).__name__ + (f" (through the proxy {proxy})" if proxy is not None else "")
