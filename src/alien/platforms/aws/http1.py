"""HTTP/1.1 for the AWS re-signer's upstream leg, sans I/O: request heads out, responses in.

Why not a client library: the re-signer forwards a request that is already complete — method,
raw target, every header, content length — and streams the response back untouched. It needs no
URL handling (the target must go out byte for byte), no cookies, redirects, decompression,
header defaults or per-request bookkeeping, yet a general client (aiohttp) spent 1.0 to 1.4 ms of
CPU per small request on exactly those, about half of the manager's cost of a proxied request.
What remains is framing: the request head is a join, the response is parsed by httptools (the
llhttp parser uvicorn uses), and this module only adds what httptools leaves to its caller —
collecting the head, queueing body chunks, and knowing when a response ends (a response to HEAD
has no body whatever its headers say; one without length or chunking ends with the connection).
A body of known length is not fed through httptools once its head is parsed: httptools hands
each body piece over as a copy, and for a large download that copy was a tenth of the manager's
CPU; counting bytes is all the framing such a body has, so the received bytes are queued as
they came.
The I/O is in :mod:`alien.platforms.aws.http1_client`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

import httptools

from alien.errors import ValidationError


class ResponseError(Exception):
    """The upstream's bytes are not a valid HTTP/1.1 response (or it ended too early)."""


def request_head(method: str, target: str, headers: Iterable[tuple[str, str]]) -> bytes:
    """The request line and header block. Refuses a CR, LF or NUL anywhere (header injection);
    the caller's request was parsed by a strict server already, so this is a second line."""
    lines = [f"{method} {target} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in headers]
    text = "\r\n".join(lines)
    breaks = len(lines) - 1  # the only CR and LF allowed are the ones joining the lines
    if text.count("\r") != breaks or text.count("\n") != breaks or "\0" in text:
        raise ValidationError("a header or the target holds a line break", field="headers")
    return (text + "\r\n\r\n").encode("latin-1")


def chunk(data: bytes) -> bytes:
    """``data`` as one chunk of a ``Transfer-Encoding: chunked`` body."""
    return b"%x\r\n%s\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"


class ResponseParser:
    """One response on a connection. Feed it what arrives; read ``status``/``headers`` once
    ``head_done``, body bytes with :meth:`take` (``pending`` of them wait); ``complete`` when
    the response ended, and ``reusable`` if the connection may carry another request after."""

    def __init__(self, *, head_only: bool = False) -> None:
        self._head_only = head_only
        self._parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self.head_done = False
        self.complete = False
        self.pending = 0
        self._chunks: deque[bytes] = deque()
        self._until_eof = False
        self._keep_alive = False
        self._extra = False
        self._remaining: int | None = None  # body bytes still due, once counted by us

    @property
    def reusable(self) -> bool:
        return self.complete and self._keep_alive and not self._extra and not self._head_only

    def take(self) -> bytes | None:
        """The oldest body bytes not taken yet, if any."""
        if not self._chunks:
            return None
        data = self._chunks.popleft()
        self.pending -= len(data)
        return data

    def feed(self, data: bytes) -> None:
        if self.complete:
            self._extra = self._extra or bool(data)  # bytes after the response: do not reuse
            return
        if self._remaining is not None:
            self._counted(data)
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if self.complete:  # garbage after a whole response: the response stands
                self._extra = True
                return
            raise ResponseError(f"invalid HTTP response: {exc}") from None

    def feed_eof(self) -> None:
        """The connection ended: completes a body delimited by it, otherwise an error."""
        if self.complete:
            return
        if self.head_done and self._until_eof:
            self.complete = True
            self._keep_alive = False
            return
        raise ResponseError("the connection closed before the response was complete")

    # --- httptools callbacks ---

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def _counted(self, data: bytes) -> None:
        """Body bytes of a known length, past what httptools parsed (see the module doc)."""
        assert self._remaining is not None
        if len(data) > self._remaining:
            self._extra = True
            data = data[: self._remaining]
        if data:
            self._chunks.append(data)
            self.pending += len(data)
            self._remaining -= len(data)
        if not self._remaining:
            self.complete = True

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # an interim response; the real one follows
            self.headers = []
            return
        self.status = status
        self.head_done = True
        self._keep_alive = self._parser.should_keep_alive()
        names = [name for name, _ in self.headers]
        self._until_eof = "content-length" not in names and "transfer-encoding" not in names
        if self._head_only:
            self.complete = True
        elif self._counts_body(status, names):
            # httptools validated the value; it counts the rest of this feed's body bytes
            # (on_body), the next feeds are counted by us.
            self._remaining = int(dict(self.headers)["content-length"])

    @staticmethod
    def _counts_body(status: int, names: list[str]) -> bool:
        """Whether the body is delimited by one Content-Length alone (a 204 or 304 has none)."""
        return (
            status not in (204, 304)
            and names.count("content-length") == 1
            and "transfer-encoding" not in names
        )

    def on_body(self, body: bytes) -> None:
        if not self._head_only:
            self._chunks.append(body)
            self.pending += len(body)
            if self._remaining is not None:
                self._remaining -= len(body)

    def on_message_complete(self) -> None:
        if self.head_done:
            self.complete = True
