"""The loopback proxy's proof that a request comes from the debug session's child process.

The child gets session-only dummy keys; this authenticator accepts a request only if it is
SigV4-signed (header or presigned URL) with exactly those keys, within the allowed clock skew.
A second local client that lacks the secret, signs with other keys or sends nothing is refused
before any byte of its body is read.

Most callers send ``x-amz-content-sha256`` (S3 always does), and then the body streams through
untouched — unless it is a signed-chunk upload (:mod:`.signed_chunks`): then every chunk's
signature is checked against the session's key as the body streams, since AWS will only ever see
the chain the re-signer makes. A caller that sends no ``x-amz-content-sha256`` (the JSON and
query protocols) signed the SHA-256 of its body, so we must hash the body before we can verify:
it is spooled (memory first, then a file in the session's private directory) and replayed, and
the computed hash is added as ``x-amz-content-sha256`` so the re-signer never has to read the
body again.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from hashlib import sha256
from pathlib import Path
from typing import IO

from alien.errors import PayloadTooLarge, Unauthenticated
from alien.platforms.aws.signed_chunks import (
    SIGNED_CHUNK_MODES,
    SIGNED_CHUNKS_TRAILER,
    ChunkSigner,
    SignedChunkStream,
    through,
)
from alien.platforms.aws.sigv4 import (
    DEFAULT_MAX_SKEW,
    HeaderAuth,
    is_presigned,
    parse_authorization,
    verify_header_auth,
    verify_query_auth,
)
from alien.protocol.http_exchange import Body, RequestHead

CHUNK = 256 * 1024


def _utcnow() -> datetime:
    return datetime.now(UTC)


async def _replay(spool: IO[bytes]) -> AsyncIterator[bytes]:
    try:
        spool.seek(0)
        while chunk := spool.read(CHUNK):
            yield chunk
    finally:
        spool.close()


async def spool_and_hash(
    body: Body, *, max_memory: int, max_size: int, spool_dir: Path | None
) -> tuple[str, IO[bytes]]:
    """Read ``body`` once into a spool; return its SHA-256 and the spool (caller closes it)."""
    digest = sha256()
    spool = tempfile.SpooledTemporaryFile(max_size=max_memory, dir=spool_dir)  # noqa: SIM115
    size = 0
    try:
        async for chunk in body:
            size += len(chunk)
            if size > max_size:
                raise PayloadTooLarge(
                    f"a body without x-amz-content-sha256 may be at most {max_size} bytes",
                    field="x-amz-content-sha256",
                    details={"aws_code": "EntityTooLarge"},
                )
            digest.update(chunk)
            spool.write(chunk)
    except BaseException:
        spool.close()
        raise
    return digest.hexdigest(), spool


class SigV4SessionAuthenticator:
    """Accepts only requests signed with this session's dummy AWS keys."""

    def __init__(
        self,
        access_key_id: str,
        secret_access_key: str,
        *,
        spool_dir: Path | None = None,
        max_spool_memory: int = 1024 * 1024,
        max_spool_size: int = 256 * 1024 * 1024,
        max_skew: timedelta = DEFAULT_MAX_SKEW,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._key = access_key_id
        self._secret = secret_access_key
        self._spool_dir = spool_dir
        self._max_memory = max_spool_memory
        self._max_size = max_spool_size
        self._max_skew = max_skew
        self._clock = clock

    def __repr__(self) -> str:
        return f"SigV4SessionAuthenticator(access_key_id={self._key!r})"

    async def authenticate(self, head: RequestHead, body: Body) -> tuple[RequestHead, Body]:
        authorization = head.get("authorization")
        if authorization is None:
            if not is_presigned(head.target):
                raise Unauthenticated(
                    "request is not signed with the debug session's keys",
                    field="authorization",
                    details={"aws_code": "MissingAuthenticationToken"},
                )
            verify_query_auth(
                head.method,
                head.target,
                head.headers,
                access_key=self._key,
                secret_key=self._secret,
                now=self._clock(),
                max_skew=self._max_skew,
            )
            return head, body
        # Refuse a foreign key before reading (and spooling) any of the body.
        if parse_authorization(authorization).scope.access_key != self._key:
            raise Unauthenticated(
                "the access key id is not this debug session's",
                field="authorization",
                details={"aws_code": "InvalidClientTokenId"},
            )
        payload_hash = head.get("x-amz-content-sha256")
        if payload_hash in SIGNED_CHUNK_MODES:
            auth = self._verify(head, payload_hash)
            return head, through(body, self._chunk_verifier(head, auth, payload_hash))
        if payload_hash is not None:
            self._verify(head, payload_hash)
            return head, body
        payload_hash, spool = await spool_and_hash(
            body, max_memory=self._max_memory, max_size=self._max_size, spool_dir=self._spool_dir
        )
        try:
            self._verify(head, payload_hash)
        except BaseException:
            spool.close()
            raise
        return head.with_header("x-amz-content-sha256", payload_hash), _replay(spool)

    def _chunk_verifier(
        self, head: RequestHead, auth: HeaderAuth, payload_hash: str
    ) -> SignedChunkStream:
        """The caller's chain, seeded by its header signature (just verified)."""
        scope = auth.scope
        amz_date = head.get("x-amz-date") or ""  # verified: its date is the scope's
        chain = ChunkSigner.seeded(
            self._secret, amz_date, scope.region, scope.service, auth.signature
        )
        return SignedChunkStream(verify=chain, trailer=payload_hash == SIGNED_CHUNKS_TRAILER)

    def _verify(self, head: RequestHead, payload_hash: str) -> HeaderAuth:
        return verify_header_auth(
            head.method,
            head.target,
            head.headers,
            payload_hash=payload_hash,
            access_key=self._key,
            secret_key=self._secret,
            now=self._clock(),
            max_skew=self._max_skew,
        )
