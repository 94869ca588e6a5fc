"""The seam between the loopback debug proxy and whatever carries a request onward.

The proxy authenticates a local request and hands it to an ``Upstream``: in push mode the tunnel
to the manager (which re-signs it), in tests and single-machine setups the AWS re-signer directly.
An upstream sees a request head and an async iterator of body chunks, and answers with a response
head and an async iterator of body chunks, so nothing on the way needs to hold a whole body.

Pure data and interfaces, no I/O and no alien imports: the tunnel (``alien.tunnel``), the
platform re-signers and the agent's forwarders implement these without depending on the proxy.
It also holds what every one of them must drop when passing a request on: the hop-by-hop headers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

Body = AsyncIterator[bytes]
HeaderPairs = tuple[tuple[str, str], ...]

#: Headers that describe one hop (RFC 9110 §7.6.1 and common proxy extensions): a proxy or
#: re-signer never forwards them, nor any header a ``Connection`` header names.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


def _normalise(headers: Iterable[tuple[str, str]]) -> HeaderPairs:
    return tuple((name.lower(), value) for name, value in headers)


@dataclass(frozen=True)
class RequestHead:
    """A request as received: ``target`` is the raw path and query, byte for byte (decoded as
    latin-1), header names are lower-case and repeated headers stay separate, in order."""

    method: str
    target: str
    headers: HeaderPairs

    @classmethod
    def create(cls, method: str, target: str, headers: Iterable[tuple[str, str]]) -> RequestHead:
        return cls(method=method.upper(), target=target, headers=_normalise(headers))

    def get(self, name: str) -> str | None:
        """First value of header ``name`` (any case), or None."""
        name = name.lower()
        return next((value for key, value in self.headers if key == name), None)

    def get_all(self, name: str) -> list[str]:
        name = name.lower()
        return [value for key, value in self.headers if key == name]

    def with_header(self, name: str, value: str) -> RequestHead:
        """A copy with every ``name`` header replaced by one ``name: value``."""
        name = name.lower()
        kept = tuple((k, v) for k, v in self.headers if k != name)
        return RequestHead(self.method, self.target, (*kept, (name, value)))


@dataclass(frozen=True)
class ResponseHead:
    status: int
    headers: HeaderPairs

    @classmethod
    def create(cls, status: int, headers: Iterable[tuple[str, str]]) -> ResponseHead:
        return cls(status=status, headers=_normalise(headers))

    def get(self, name: str) -> str | None:
        name = name.lower()
        return next((value for key, value in self.headers if key == name), None)


async def iterate_once(data: bytes) -> AsyncIterator[bytes]:
    """A body of one chunk (nothing for an empty body)."""
    if data:
        yield data


async def first_chunk(chunks: AsyncIterator[bytes]) -> bytes | None:
    """The first bytes of a body, or ``None`` if it has none (empty chunks are skipped); the
    rest stays in ``chunks``: :func:`prepend` puts the first chunk back."""
    async for chunk in chunks:
        if chunk:
            return chunk
    return None


async def prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for chunk in rest:
        yield chunk


async def _nothing() -> None:
    return None


@dataclass
class UpstreamResponse:
    """A response whose body streams; ``aclose`` releases the connection behind it and is always
    called by the proxy, whether the body was read to the end or not."""

    head: ResponseHead
    body: Body
    close: Callable[[], Awaitable[None]] = field(default=_nothing)

    async def aclose(self) -> None:
        await self.close()

    @classmethod
    def from_bytes(
        cls, status: int, headers: Iterable[tuple[str, str]], content: bytes
    ) -> UpstreamResponse:
        """A complete small response (errors, refusals), with its ``content-length`` set."""
        pairs = [(k, v) for k, v in _normalise(headers) if k != "content-length"]
        pairs.append(("content-length", str(len(content))))
        return cls(head=ResponseHead.create(status, pairs), body=iterate_once(content))


ERROR_HEADER = "alien-error"
"""Response header naming the error code of a response the answering side made itself (a
refusal, a destination it could not reach), never the destination's own: lets whoever relays or
audits the exchange tell "the agent refused" from "the target answered 403"."""


def marked(response: UpstreamResponse, code: str) -> UpstreamResponse:
    """``response`` carrying :data:`ERROR_HEADER` ``code`` (replacing any it had)."""
    kept = [(k, v) for k, v in response.head.headers if k != ERROR_HEADER]
    head = ResponseHead.create(response.head.status, [*kept, (ERROR_HEADER, code)])
    return UpstreamResponse(head=head, body=response.body, close=response.close)


class Upstream(Protocol):
    """Where the loopback proxy sends an authenticated request."""

    async def send(self, head: RequestHead, body: Body) -> UpstreamResponse:
        """Forward one request; the body is read at most once, as the upstream needs it."""
        ...


class Authenticator(Protocol):
    """Decides whether a local request holds this session's secret.

    Returns the head and body to forward (an authenticator may add a header it computed, such as a
    payload hash, and must then hand back an equivalent body); raises an ``AlienError`` otherwise.
    """

    async def authenticate(self, head: RequestHead, body: Body) -> tuple[RequestHead, Body]: ...
