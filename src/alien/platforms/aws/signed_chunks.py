"""S3 signed-chunk uploads, re-signed on the way through. Pure (sans-I/O).

A caller that signs its payload but streams it (``x-amz-content-sha256:
STREAMING-AWS4-HMAC-SHA256-PAYLOAD``, or ``…-PAYLOAD-TRAILER`` with trailing checksum headers)
sends the body as ``aws-chunked``: each chunk is
``<hex size>;chunk-signature=<sig>\\r\\n<data>\\r\\n``, the last one has size 0, and the
signatures form a chain that starts at the request's own (header) signature — the *seed* — and
covers every chunk's SHA-256, then the trailer's. The AWS SDKs for Java and Go and MinIO's
clients do this over plain HTTP, which is what the loopback debug proxy speaks.

The caller's chain is made with the session's dummy key, so AWS would refuse it. The re-signer
rebuilds the chain with the deployment's key, seeded by the re-signed header signature: every
chunk is held until its bytes are all in (a chunk's signature precedes its data), hashed, and
passed on with our signature in place of the caller's. A signature is always 64 hex digits and
the caller's size field is kept as written, so the body keeps its length byte for byte and the
caller's ``Content-Length`` stays right. Memory: one chunk (SDKs send 64 KiB to 8 MiB; more than
:data:`MAX_CHUNK` is refused).

The caller's chain is verified where its key is known: the loopback proxy (the CLI) checks every
chunk and the trailer against the session's dummy key, seeded by the header signature it has
just verified, and passes the body on unchanged. The header signature proves who sent the
request, but only the chain proves the bytes that follow: without it, a body changed after
signing would be re-signed downstream and accepted by AWS, which can only check our chain. A
wrong signature stops the body there (``SignatureDoesNotMatch``), before the rest is read, and
the upload upstream is left incomplete. The framing itself is parsed strictly (untrusted input):
sizes in hex, exactly one ``chunk-signature`` extension, CRLFs where they belong, and the sizes
add up to ``x-amz-decoded-content-length`` when the caller declared it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

from alien.errors import Unauthenticated, ValidationError

SIGNED_CHUNKS = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
SIGNED_CHUNKS_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
SIGNED_CHUNK_MODES = frozenset({SIGNED_CHUNKS, SIGNED_CHUNKS_TRAILER})
MAX_CHUNK = 16 * 1024 * 1024
MAX_LINE = 8192
"""Longest chunk header or trailer line (a header line is under 100 bytes)."""
MAX_TRAILER = 64 * 1024

_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_CHUNK_HEADER = re.compile(rb"([0-9A-Fa-f]{1,16});chunk-signature=([0-9a-f]{64})")
_TRAILER_LINE = re.compile(rb"([A-Za-z0-9-]{1,128}):(.*)")
_TRAILER_SIGNATURE = b"x-amz-trailer-signature"
_HEX64 = re.compile(rb"[0-9a-f]{64}")


def signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    """The SigV4 signing key for a credential scope (``date`` is ``YYYYMMDD``)."""
    key = ("AWS4" + secret_key).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


@dataclass
class ChunkSigner:
    """A chain of chunk signatures, from the seed (the request's header signature)."""

    key: bytes
    amz_date: str
    scope: str
    """``YYYYMMDD/region/service/aws4_request``."""
    previous: str
    """The seed at first, then the last signature made."""

    @classmethod
    def seeded(
        cls, secret_key: str, amz_date: str, region: str, service: str, seed: str
    ) -> ChunkSigner:
        """The chain a request signed with ``secret_key`` at ``amz_date`` carries."""
        date = amz_date[:8]
        return cls(
            key=signing_key(secret_key, date, region, service),
            amz_date=amz_date,
            scope=f"{date}/{region}/{service}/aws4_request",
            previous=seed,
        )

    def _sign(self, algorithm: str, *hashes: str) -> str:
        lines = (algorithm, self.amz_date, self.scope, self.previous, *hashes)
        signature = hmac.new(self.key, "\n".join(lines).encode(), hashlib.sha256).hexdigest()
        self.previous = signature
        return signature

    def chunk(self, data_sha256: str) -> str:
        """The next chunk's signature, given the SHA-256 (hex) of its data."""
        return self._sign("AWS4-HMAC-SHA256-PAYLOAD", _EMPTY_SHA256, data_sha256)

    def trailer(self, canonical_trailer: bytes) -> str:
        """The trailer's signature, given its canonical form (``name:value\\n`` each, sorted)."""
        return self._sign("AWS4-HMAC-SHA256-TRAILER", hashlib.sha256(canonical_trailer).hexdigest())


def _malformed(message: str) -> ValidationError:
    return ValidationError(
        f"malformed aws-chunked body: {message}",
        field="body",
        details={"aws_code": "IncompleteBody"},
    )


def _forged(what: str) -> Unauthenticated:
    return Unauthenticated(
        f"{what} is not signed with the debug session's key",
        field="chunk-signature",
        details={"aws_code": "SignatureDoesNotMatch"},
    )


class SignedChunkStream:
    """Feed the caller's aws-chunked body in pieces of any size; get it back with each
    signature checked against ``verify``'s chain (when given) and replaced by ``resign``'s (when
    given; otherwise passed on as written). ``end()`` checks that the body was complete."""

    def __init__(
        self,
        *,
        resign: ChunkSigner | None = None,
        verify: ChunkSigner | None = None,
        trailer: bool,
        decoded_length: int | None = None,
    ) -> None:
        self._resign = resign
        self._verify = verify
        self._caller_signature = b""
        self._trailer_expected = trailer
        self._decoded_length = decoded_length
        self._decoded = 0
        self._buffer = bytearray()
        self._state = "header"
        self._size_text = b""
        self._remaining = 0
        self._pieces: list[bytes] = []
        self._hash = hashlib.sha256()
        self._trailers: list[tuple[bytes, bytes]] = []
        """Lower-case name and trimmed value of each trailing header (what the signature covers)."""
        self._trailer_bytes = 0

    def feed(self, data: bytes) -> list[bytes]:
        """The output that ``data`` completes (whole chunks; nothing while one is still open)."""
        out: list[bytes] = []
        view = memoryview(data)
        while view:
            if self._state == "data":
                take = view[: self._remaining]
                self._pieces.append(bytes(take))
                self._hash.update(take)
                self._remaining -= len(take)
                view = view[len(take) :]
                if self._remaining == 0:
                    self._state = "data-end"
                continue
            if self._state == "done":
                raise _malformed("bytes after the end of the body")
            line, view = self._line(view)
            if line is not None:
                out.extend(self._on_line(line))
        return out

    def end(self) -> None:
        """The caller's body ended: refuse it if it stopped short."""
        if self._state != "done":
            raise _malformed("the body ended before its final chunk")

    def _line(self, view: memoryview) -> tuple[bytes | None, memoryview]:
        """One CRLF-terminated line (without the CRLF) if complete, and the rest of ``view``."""
        end = bytes(view[: MAX_LINE + 2]).find(b"\n")
        if end < 0:
            if len(self._buffer) + len(view) > MAX_LINE:
                raise _malformed(f"a line longer than {MAX_LINE} bytes")
            self._buffer += view
            return None, view[len(view) :]
        self._buffer += view[: end + 1]
        line = bytes(self._buffer)
        self._buffer.clear()
        if len(line) > MAX_LINE + 2 or not line.endswith(b"\r\n"):
            raise _malformed("a line not ended by CRLF")
        return line[:-2], view[end + 1 :]

    def _on_line(self, line: bytes) -> list[bytes]:
        if self._state == "data-end":
            if line:
                raise _malformed("a chunk is longer than its size")
            self._state = "header"
            return self._emit_chunk()
        if self._state == "header":
            return self._on_header(line)
        if self._state == "trailer":
            return self._on_trailer(line)
        # "final": the empty line that ends the body
        if line:
            raise _malformed("data after the final chunk")
        self._state = "done"
        self._check_length()
        return [b"\r\n"]

    def _on_header(self, line: bytes) -> list[bytes]:
        match = _CHUNK_HEADER.fullmatch(line)
        if match is None:
            raise _malformed("a chunk header must be '<hex size>;chunk-signature=<64 hex>'")
        self._size_text, self._caller_signature = match.group(1), match.group(2)
        size = int(self._size_text, 16)
        if size > MAX_CHUNK:
            raise _malformed(f"a chunk of {size} bytes (at most {MAX_CHUNK})")
        self._decoded += size
        if size:
            self._remaining = size
            self._state = "data"
            return []
        signature = self._chunk_signature(_EMPTY_SHA256)
        self._state = "trailer" if self._trailer_expected else "final"
        return [self._size_text + b";chunk-signature=" + signature + b"\r\n"]

    def _emit_chunk(self) -> list[bytes]:
        signature = self._chunk_signature(self._hash.hexdigest())
        head = self._size_text + b";chunk-signature=" + signature + b"\r\n"
        out = [head, *self._pieces, b"\r\n"]
        self._pieces = []
        self._hash = hashlib.sha256()
        return out

    def _chunk_signature(self, data_sha256: str) -> bytes:
        """The signature to pass on for the chunk just read, once the caller's is checked."""
        if self._verify is not None:
            expected = self._verify.chunk(data_sha256).encode()
            if not hmac.compare_digest(expected, self._caller_signature):
                raise _forged("a chunk of the body")
        if self._resign is None:
            return self._caller_signature
        return self._resign.chunk(data_sha256).encode()

    def _on_trailer(self, line: bytes) -> list[bytes]:
        if not line:  # the trailer ended without a signature
            raise _malformed("the trailer carries no x-amz-trailer-signature")
        self._trailer_bytes += len(line) + 2
        if self._trailer_bytes > MAX_TRAILER:
            raise _malformed(f"a trailer over {MAX_TRAILER} bytes")
        match = _TRAILER_LINE.fullmatch(line)
        if match is None:
            raise _malformed("a trailer line must be 'name:value'")
        name, value = match.group(1).lower(), match.group(2)
        if name != _TRAILER_SIGNATURE:
            self._trailers.append((name, value.strip()))
            return [line + b"\r\n"]  # passed on as written
        caller_signature = value.strip()
        if _HEX64.fullmatch(caller_signature) is None:
            raise _malformed("x-amz-trailer-signature must be 64 hex digits")
        canonical = b"".join(n + b":" + v + b"\n" for n, v in sorted(self._trailers))
        if self._verify is not None:
            expected = self._verify.trailer(canonical).encode()
            if not hmac.compare_digest(expected, caller_signature):
                raise _forged("the trailer")
        self._state = "final"
        if self._resign is None:
            return [line + b"\r\n"]
        signature = self._resign.trailer(canonical).encode()
        return [line.replace(caller_signature, signature) + b"\r\n"]

    def _check_length(self) -> None:
        if self._decoded_length is not None and self._decoded != self._decoded_length:
            raise _malformed(
                f"the chunks hold {self._decoded} bytes, "
                f"not the declared x-amz-decoded-content-length {self._decoded_length}"
            )


async def through(body: AsyncIterable[bytes], stream: SignedChunkStream) -> AsyncIterator[bytes]:
    """``body`` as ``stream`` passes it on, piece by piece (an adapter: it does no I/O itself)."""
    async for piece in body:
        for out in stream.feed(piece):
            yield out
    stream.end()
