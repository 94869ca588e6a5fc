"""Re-sign a caller's AWS request with the deployment's credentials, for the allowed endpoint.

What makes this safe to do without touching the body (and so lets a 50 MB upload stream through):

* The caller's ``x-amz-content-sha256`` is reused as the payload hash. A literal hex hash is
  checked by AWS against the body we forward; ``UNSIGNED-PAYLOAD`` and
  ``STREAMING-UNSIGNED-PAYLOAD-TRAILER`` (aws-chunked with a trailing checksum) pass through as they
  are. Signed chunks (``STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]``) carry a chain of
  signatures made with the caller's key inside the body: the request gets a
  :class:`~alien.platforms.aws.signed_chunks.ChunkSigner` seeded with our header signature, and
  the upstream re-signs the chunks as they stream (:mod:`.signed_chunks`; same length).
* The path and query are forwarded exactly as received: no re-quoting, no S3 path normalisation,
  so the canonical request AWS computes is the one we signed.
* Only what the caller signed is signed again (plus ``x-amz-content-sha256``), so a header added
  or changed in between is not silently vouched for.

Pure: the clock and the credentials are arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from botocore.utils import percent_encode

from alien.errors import ValidationError
from alien.platforms.aws.credentials import AwsCredentials
from alien.platforms.aws.endpoints import AwsRoute
from alien.platforms.aws.signed_chunks import (
    SIGNED_CHUNK_MODES,
    SIGNED_CHUNKS_TRAILER,
    ChunkSigner,
    SignedChunkStream,
)
from alien.platforms.aws.sigv4 import (
    ALGORITHM,
    PRESIGN_PARAMS,
    CredentialScope,
    Headers,
    SigningSpec,
    authorization_header,
    compute_signature,
    format_amz_date,
    header_value,
    header_values,
    is_presigned,
    parse_authorization,
    parse_query_auth,
    presigned_payload_hash,
    without_query_params,
)
from alien.protocol.http_exchange import HOP_BY_HOP

# Headers that describe the caller's hop or its signature; the outgoing request gets its own.
REPLACED = frozenset(
    {"authorization", "x-amz-security-token", "x-amz-date", "host", "expect", "content-length"}
)
PRESIGN_EXPIRES = 300


@dataclass(frozen=True)
class SignedChunks:
    """What re-signing a signed-chunk body takes: our chain's start, and what to check."""

    signer: ChunkSigner
    trailer: bool
    decoded_length: int | None

    def resigner(self) -> SignedChunkStream:
        return SignedChunkStream(
            resign=self.signer, trailer=self.trailer, decoded_length=self.decoded_length
        )


@dataclass(frozen=True)
class OutgoingRequest:
    """The request to send upstream; its body is the caller's body, unchanged.

    ``target`` is the path and query to put on the request line byte for byte (HTTP clients that
    parse a whole URL remove ``.``/``..`` segments, which are legal parts of an S3 key); ``origin``
    is ``scheme://host[:port]``.
    """

    method: str
    origin: str
    target: str
    headers: tuple[tuple[str, str], ...]
    chunks: SignedChunks | None = None
    """Set for a signed-chunk upload: how to re-sign its body (:mod:`.signed_chunks`)."""

    @property
    def url(self) -> str:
        return self.origin + self.target


def split_base_url(base_url: str) -> tuple[str, str]:
    """``(origin, path prefix)`` of an upstream base URL (the prefix has no trailing slash)."""
    parts = urlsplit(base_url)
    return f"{parts.scheme}://{parts.netloc}", parts.path.rstrip("/")


def connection_tokens(headers: Headers) -> frozenset[str]:
    """Header names listed in ``Connection`` (hop-by-hop for this request only)."""
    return frozenset(
        token.strip().lower()
        for value in header_values(headers, "connection")
        for token in value.split(",")
        if token.strip()
    )


def end_to_end_headers(
    headers: Headers, dropped: frozenset[str] = REPLACED
) -> list[tuple[str, str]]:
    """``headers`` without hop-by-hop headers (including those named by ``Connection``) and
    without ``dropped``."""
    skip = HOP_BY_HOP | dropped | connection_tokens(headers)
    return [(name, value) for name, value in headers if name not in skip]


def host_header(base_url: str) -> str:
    """The ``Host`` for ``base_url``: the host, plus the port unless it is the scheme's default."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    default_port = 443 if parts.scheme == "https" else 80
    return host if parts.port in (None, default_port) else f"{host}:{parts.port}"


def _caller_signed(headers: Headers, names: Sequence[str]) -> list[tuple[str, str]]:
    """The caller's signed headers that we sign again, with their values as received."""
    skip = HOP_BY_HOP | REPLACED | connection_tokens(headers)
    keep = [name for name in names if name not in skip or name == "content-length"]
    return [(name, value) for name in keep for value in header_values(headers, name)]


def _content_length(headers: Headers) -> list[tuple[str, str]]:
    value = header_value(headers, "content-length")
    return [("content-length", value)] if value is not None else []


SIGNED_METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "DELETE", "PATCH", "OPTIONS"})
"""What AWS APIs use; anything else (``TRACE`` echoing the signature back, ``CONNECT``) is not
signed."""


def _check_signable(method: str, target: str, headers: Headers) -> None:
    """Refuse what would be signed as other bytes than are sent, or sent elsewhere than signed.

    The signer works on UTF-8 text and the request goes out as latin-1: a non-ASCII byte would
    make AWS refuse the request — and an S3 refusal echoes the canonical request (the role's
    session token in it) and the manager's signature, which the caller could replay straight to
    AWS, unaudited, until it expires. An absolute-form target is signed as a path but would be
    routed by the host inside it."""
    if method not in SIGNED_METHODS:
        raise ValidationError(f"{method} requests are not re-signed", field="method")
    if not target.startswith("/") or not target.isascii():
        raise ValidationError(
            "the target must be an ASCII path (percent-encode anything else)", field="target"
        )
    for name, value in headers:
        if not value.isascii():
            raise ValidationError(
                f"the {name} header is not ASCII (encode it, as the AWS SDKs do)", field=name
            )


def resign_request(
    method: str,
    target: str,
    headers: Headers,
    *,
    route: AwsRoute,
    credentials: AwsCredentials,
    now: datetime,
) -> OutgoingRequest:
    """Re-sign a verified caller request for ``route`` with ``credentials``.

    ``target`` is the raw path and query as received; ``headers`` are lower-case pairs as received.
    Header-signed requests must carry ``x-amz-content-sha256`` (the loopback proxy adds it when it
    hashed a body itself). Presigned requests are re-signed as presigned.
    """
    _check_signable(method, target, headers)
    if is_presigned(target):
        return _resign_presigned(method, target, headers, route, credentials, now)
    authorization = header_value(headers, "authorization")
    if authorization is None:
        raise ValidationError("request carries no SigV4 signature", field="authorization")
    auth = parse_authorization(authorization)
    payload_hash = header_value(headers, "x-amz-content-sha256")
    if payload_hash is None:
        raise ValidationError(
            "x-amz-content-sha256 is required to re-sign without re-reading the body",
            field="x-amz-content-sha256",
        )
    host = host_header(route.base_url)
    origin, prefix = split_base_url(route.base_url)
    target = prefix + target
    amz_date = format_amz_date(now)
    own = [("host", host), ("x-amz-date", amz_date)]
    if credentials.session_token:
        own.append(("x-amz-security-token", credentials.session_token))
    signed = _caller_signed(headers, auth.signed_headers)
    if not any(name == "x-amz-content-sha256" for name, _ in signed):
        signed.append(("x-amz-content-sha256", payload_hash))
    spec = SigningSpec(
        method=method,
        target=target,
        headers=[*signed, *own],
        payload_hash=payload_hash,
        amz_date=amz_date,
        region=route.signing_region,
        service=route.service,
    )
    signature = compute_signature(spec, credentials.secret_access_key)
    passed = end_to_end_headers(headers)
    if header_value(passed, "x-amz-content-sha256") is None:
        passed.append(("x-amz-content-sha256", payload_hash))
    out = [
        *passed,
        *own,
        ("authorization", authorization_header(spec, credentials.access_key_id, signature)),
        *_content_length(headers),
    ]
    chunks = None
    if payload_hash in SIGNED_CHUNK_MODES:
        chunks = _signed_chunks(spec, payload_hash, headers, credentials, signature)
    return OutgoingRequest(method, origin, target, tuple(out), chunks)


def _signed_chunks(
    spec: SigningSpec,
    payload_hash: str,
    headers: Headers,
    credentials: AwsCredentials,
    seed: str,
) -> SignedChunks:
    declared = header_value(headers, "x-amz-decoded-content-length")
    if declared is not None and not (declared.isascii() and declared.isdigit()):
        raise ValidationError(
            "x-amz-decoded-content-length must be a number of bytes",
            field="x-amz-decoded-content-length",
        )
    return SignedChunks(
        signer=ChunkSigner.seeded(
            credentials.secret_access_key, spec.amz_date, spec.region, spec.service, seed
        ),
        trailer=payload_hash == SIGNED_CHUNKS_TRAILER,
        decoded_length=int(declared) if declared is not None else None,
    )


def _resign_presigned(
    method: str,
    target: str,
    headers: Headers,
    route: AwsRoute,
    credentials: AwsCredentials,
    now: datetime,
) -> OutgoingRequest:
    """Replace a presigned URL's authentication parameters with our own, still as a presigned
    URL (the caller's request may have no payload hash header to sign with)."""
    auth = parse_query_auth(target)
    host = host_header(route.base_url)
    amz_date = format_amz_date(now)
    signed = [*_caller_signed(headers, auth.signed_headers), ("host", host)]
    scope = CredentialScope(
        credentials.access_key_id, amz_date[:8], route.signing_region, route.service
    )
    params = [
        ("X-Amz-Algorithm", ALGORITHM),
        ("X-Amz-Credential", str(scope)),
        ("X-Amz-Date", amz_date),
        ("X-Amz-Expires", str(PRESIGN_EXPIRES)),
        ("X-Amz-SignedHeaders", ";".join(sorted({name for name, _ in signed}))),
    ]
    if credentials.session_token:
        params.append(("X-Amz-Security-Token", credentials.session_token))
    origin, prefix = split_base_url(route.base_url)
    base = prefix + without_query_params(target, PRESIGN_PARAMS)
    encoded = "&".join(f"{key}={percent_encode(value)}" for key, value in params)
    joiner = "" if base.endswith("?") else "&" if "?" in base else "?"
    unsigned_target = f"{base}{joiner}{encoded}"
    spec = SigningSpec(
        method=method,
        target=unsigned_target,
        headers=signed,
        payload_hash=presigned_payload_hash(route.service, headers),
        amz_date=amz_date,
        region=route.signing_region,
        service=route.service,
    )
    signature = compute_signature(spec, credentials.secret_access_key)
    out = [*end_to_end_headers(headers), ("host", host), *_content_length(headers)]
    signed_target = f"{unsigned_target}&X-Amz-Signature={signature}"
    return OutgoingRequest(method, origin, signed_target, tuple(out))
