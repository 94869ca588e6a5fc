"""httpx transports that go through the environment's HTTP proxy the way the agent's egress needs.

httpx can tunnel TLS through a proxy itself, but it then names the destination to TLS by the
host of the URL it connects to, ignoring the ``sni_hostname`` extension. The egress connects to
the address it resolved and checked, not to the name (see :mod:`alien.tunnel.forward`), so TLS
would be checked against an IP address. :func:`proxied_transports` therefore tunnels https with
a network backend of its own — each connection httpx opens is a ``CONNECT`` tunnel to the host
and port of the URL (the checked address), after which httpx runs TLS as on a direct connection,
honouring ``sni_hostname`` — and leaves plain http to httpx's own forwarding (absolute form to
the proxy: the address in the request line, the ``Host`` header as sent).
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable

import httpcore
import httpx

from alien.tunnel.proxy_connect import READ_SIZE, Proxy


class _TunnelBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network, each TCP connection being a ``CONNECT`` tunnel through ``proxy``."""

    def __init__(self, proxy: Proxy) -> None:
        self._proxy = proxy
        self._network = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        proxy = self._proxy
        try:
            stream = await self._network.connect_tcp(
                proxy.host, proxy.port, timeout, local_address, socket_options
            )
        except httpcore.ConnectError as exc:
            raise httpcore.ProxyError(f"could not reach the proxy {proxy}: {exc}") from None
        try:
            await proxy.tunnel(
                host,
                port,
                lambda data: stream.write(data, timeout),
                lambda: stream.read(READ_SIZE, timeout),
            )
        except BaseException as exc:
            await stream.aclose()
            if isinstance(exc, OSError):
                raise httpcore.ProxyError(str(exc)) from None
            raise
        return stream


class _TunnelTransport(httpx.AsyncHTTPTransport):
    """httpx's transport on :class:`_TunnelBackend`. (httpx takes no network backend, so its
    connection pool is replaced by one made with httpcore's public API.)"""

    def __init__(self, proxy: Proxy, *, verify: ssl.SSLContext | bool, limits: httpx.Limits):
        context = httpx.create_ssl_context(verify=verify)
        super().__init__(verify=context, limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_TunnelBackend(proxy),
        )


def proxied_transports(
    proxy: Proxy, *, verify: ssl.SSLContext | bool, limits: httpx.Limits
) -> tuple[httpx.AsyncBaseTransport, dict[str, httpx.AsyncBaseTransport]]:
    """``(transport, mounts)`` for an ``httpx.AsyncClient`` whose requests all go through
    ``proxy``: https (the default transport) through ``CONNECT`` tunnels, http (mounted) in
    absolute form, with the proxy's credentials either way."""
    forwarding = httpx.Proxy(str(proxy), headers=proxy.headers)
    plain = httpx.AsyncHTTPTransport(verify=verify, limits=limits, proxy=forwarding)
    return _TunnelTransport(proxy, verify=verify, limits=limits), {"http://": plain}
