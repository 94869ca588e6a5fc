"""AWS Signature Version 4: parse what a caller sent, compute and verify signatures.

The loopback debug proxy hands the local ``aws`` CLI session-only dummy keys; the only proof that a
request comes from the engineer's child process is a valid SigV4 signature made with the session
secret. Re-signing for the real endpoint uses the same canonicalisation. Both go through
``compute_signature``, which lets botocore's own signer build the canonical request (path
encoding rules, header trimming, query sorting, key derivation) so that we agree byte for byte with
what botocore-based callers computed. We only pin two things botocore would otherwise choose itself:
the exact set of headers to sign (the caller's ``SignedHeaders``) and the payload hash (the caller's
``x-amz-content-sha256``, so bodies are never re-hashed).

No network and no clock of its own: ``now`` is always passed in.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from hashlib import sha256
from typing import Any
from urllib.parse import unquote

from alien.errors import Unauthenticated

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
STREAMING_UNSIGNED_PAYLOAD_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
EMPTY_SHA256 = sha256(b"").hexdigest()
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
DEFAULT_MAX_SKEW = timedelta(minutes=5)
MAX_PRESIGN_EXPIRES = 7 * 24 * 3600

# Signing names whose canonical path is not normalised or double-encoded (botocore's S3 signers).
S3_SIGNING_NAMES = frozenset({"s3", "s3-object-lambda", "s3-outposts"})

# Query parameters that carry a presigned URL's authentication, not the operation.
PRESIGN_PARAMS = frozenset(
    {
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Signature",
        "X-Amz-Security-Token",
    }
)

_ACCESS_KEY_RE = re.compile(r"[A-Za-z0-9_+=.@-]{1,128}")
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_DATE_RE = re.compile(r"[0-9]{8}")
_HEADER_NAME_RE = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]{1,128}")
_SIGNATURE_RE = re.compile(r"[0-9a-f]{64}")
_MAX_HEADER_LEN = 8192
_INCOMPLETE = "IncompleteSignature"
_QUERY_ERROR = "AuthorizationQueryParametersError"
_REQUIRED_QUERY = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
)

Headers = Sequence[tuple[str, str]]
"""Header pairs with lower-case names, in the order received; a name may repeat."""


def header_values(headers: Headers, name: str) -> list[str]:
    """All values of one header (``name`` lower-case), in order."""
    return [value for key, value in headers if key == name]


def header_value(headers: Headers, name: str) -> str | None:
    """The first value of one header, or None."""
    for key, value in headers:
        if key == name:
            return value
    return None


def _refuse(message: str, aws_code: str, field: str = "authorization") -> Unauthenticated:
    """An authentication failure that also names the AWS error code a CLI understands."""
    return Unauthenticated(message, field=field, details={"aws_code": aws_code})


@dataclass(frozen=True)
class CredentialScope:
    """``Credential=KEY/DATE/REGION/SERVICE/aws4_request``: who signed, for what and when."""

    access_key: str
    date: str
    region: str
    service: str

    def __str__(self) -> str:
        return f"{self.access_key}/{self.date}/{self.region}/{self.service}/aws4_request"

    @property
    def scope(self) -> str:
        """The scope without the key id, as it appears in the string to sign."""
        return f"{self.date}/{self.region}/{self.service}/aws4_request"


@dataclass(frozen=True)
class HeaderAuth:
    """A parsed ``Authorization: AWS4-HMAC-SHA256 ...`` header."""

    scope: CredentialScope
    signed_headers: tuple[str, ...]
    signature: str


@dataclass(frozen=True)
class QueryAuth:
    """The authentication parameters of a presigned (query-signed) URL."""

    scope: CredentialScope
    signed_headers: tuple[str, ...]
    signature: str
    amz_date: str
    expires: int


def parse_credential(value: str, *, field: str = "authorization") -> CredentialScope:
    """Parse ``KEY/YYYYMMDD/REGION/SERVICE/aws4_request``."""
    parts = value.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        raise _refuse("credential must be KEY/DATE/REGION/SERVICE/aws4_request", _INCOMPLETE, field)
    key, date, region, service, _ = parts
    if not _ACCESS_KEY_RE.fullmatch(key):
        raise _refuse("credential has an invalid access key id", _INCOMPLETE, field)
    if not _DATE_RE.fullmatch(date):
        raise _refuse("credential date must be YYYYMMDD", _INCOMPLETE, field)
    if not _NAME_RE.fullmatch(region) or not _NAME_RE.fullmatch(service):
        raise _refuse("credential has an invalid region or service", _INCOMPLETE, field)
    return CredentialScope(access_key=key, date=date, region=region, service=service)


def parse_signed_headers(value: str, *, field: str = "authorization") -> tuple[str, ...]:
    """Parse ``host;x-amz-date;...`` into lower-case names (order kept, duplicates refused)."""
    names = tuple(value.split(";"))
    if not all(_HEADER_NAME_RE.fullmatch(name) for name in names):
        raise _refuse(
            "SignedHeaders must be lower-case header names joined by ';'",
            _INCOMPLETE,
            field,
        )
    if len(set(names)) != len(names):
        raise _refuse("SignedHeaders lists a header twice", _INCOMPLETE, field)
    return names


def _parse_signature(value: str, field: str) -> str:
    if not _SIGNATURE_RE.fullmatch(value):
        raise _refuse("Signature must be 64 lower-case hex digits", _INCOMPLETE, field)
    return value


def parse_authorization(value: str) -> HeaderAuth:
    """Parse a SigV4 ``Authorization`` header; any malformed input raises ``Unauthenticated``."""
    if not isinstance(value, str) or len(value) > _MAX_HEADER_LEN:
        raise _refuse("Authorization header is missing or too long", _INCOMPLETE)
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise _refuse(f"only {ALGORITHM} is supported", _INCOMPLETE)
    fields: dict[str, str] = {}
    for item in rest.split(","):
        key, sep, val = item.strip().partition("=")
        if not sep or key not in ("Credential", "SignedHeaders", "Signature") or key in fields:
            raise _refuse(
                "Authorization must hold Credential=, SignedHeaders= and Signature= once each",
                _INCOMPLETE,
            )
        fields[key] = val.strip()
    if len(fields) != 3:
        raise _refuse(
            "Authorization must hold Credential=, SignedHeaders= and Signature= once each",
            _INCOMPLETE,
        )
    return HeaderAuth(
        scope=parse_credential(fields["Credential"]),
        signed_headers=parse_signed_headers(fields["SignedHeaders"]),
        signature=_parse_signature(fields["Signature"], "authorization"),
    )


def split_target(target: str) -> tuple[str, list[str]]:
    """Split a raw request target into its path and its raw ``k=v`` query pairs.

    Order and empty pairs are kept: botocore canonicalises the query it sent the same way.
    """
    path, sep, query = target.partition("?")
    return path, query.split("&") if sep else []


def query_params(pairs: Iterable[str]) -> dict[str, str]:
    """Decode raw query pairs (first occurrence wins); used only to read auth parameters."""
    params: dict[str, str] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        params.setdefault(unquote(key), unquote(value))
    return params


def is_presigned(target: str) -> bool:
    """True when the request authenticates with query parameters rather than a header."""
    _, pairs = split_target(target)
    return any(pair.partition("=")[0] == "X-Amz-Signature" for pair in pairs)


def parse_query_auth(target: str) -> QueryAuth:
    """Parse the ``X-Amz-*`` authentication parameters of a presigned URL."""
    _, pairs = split_target(target)
    params = query_params(pairs)
    field = "X-Amz-Signature"
    missing = [name for name in _REQUIRED_QUERY if name not in params]
    if missing:
        raise _refuse(f"presigned URL lacks {', '.join(missing)}", _QUERY_ERROR, field)
    if params["X-Amz-Algorithm"] != ALGORITHM:
        raise _refuse(f"only {ALGORITHM} is supported", _QUERY_ERROR, field)
    expires_text = params["X-Amz-Expires"]
    if not expires_text.isdigit() or not 0 < int(expires_text) <= MAX_PRESIGN_EXPIRES:
        raise _refuse(
            f"X-Amz-Expires must be 1..{MAX_PRESIGN_EXPIRES} seconds",
            _QUERY_ERROR,
            field,
        )
    amz_date = params["X-Amz-Date"]
    parse_amz_date(amz_date, field=field)
    return QueryAuth(
        scope=parse_credential(params["X-Amz-Credential"], field=field),
        signed_headers=parse_signed_headers(params["X-Amz-SignedHeaders"], field=field),
        signature=_parse_signature(params["X-Amz-Signature"], field),
        amz_date=amz_date,
        expires=int(expires_text),
    )


def caller_scope(target: str, headers: Headers) -> CredentialScope:
    """The credential scope the caller signed with (header or presigned query)."""
    authorization = header_value(headers, "authorization")
    if authorization is not None:
        return parse_authorization(authorization).scope
    if is_presigned(target):
        return parse_query_auth(target).scope
    raise _refuse("request is not signed", "MissingAuthenticationToken")


_AMZ_DATE_RE = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})T([0-9]{2})([0-9]{2})([0-9]{2})Z")


def parse_amz_date(value: str, *, field: str = "x-amz-date") -> datetime:
    """Parse ``YYYYMMDDTHHMMSSZ`` as an aware UTC datetime (by hand: ``strptime`` costs a
    tenth of a millisecond, on every proxied request)."""
    match = _AMZ_DATE_RE.fullmatch(value) if isinstance(value, str) else None
    try:
        if match is None:
            raise ValueError(value)
        year, month, day, hour, minute, second = (int(part) for part in match.groups())
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        raise _refuse("date must be YYYYMMDDTHHMMSSZ", _INCOMPLETE, field) from None


def format_amz_date(moment: datetime) -> str:
    """``moment`` (aware) as ``YYYYMMDDTHHMMSSZ`` in UTC."""
    return moment.astimezone(UTC).strftime(AMZ_DATE_FORMAT)


@dataclass(frozen=True)
class SigningSpec:
    """Everything that goes into one SigV4 signature.

    ``target`` is the raw path and query exactly as sent (for a presigned URL: without
    ``X-Amz-Signature``); ``headers`` are exactly the headers to sign, lower-case, with the values
    as sent.
    """

    method: str
    target: str
    headers: Headers
    payload_hash: str
    amz_date: str
    region: str
    service: str

    @property
    def signed_header_names(self) -> str:
        return ";".join(sorted({name for name, _ in self.headers}))


def canonical_request(spec: SigningSpec) -> str:
    """The SigV4 canonical request for ``spec`` (exposed for diagnostics and tests)."""
    signer, request = _signer_and_request(spec, "")
    return signer.canonical_request(request)


def _signer_and_request(spec: SigningSpec, secret_key: str) -> tuple[Any, Any]:
    from alien.platforms.aws.botocore_signer import signer_and_request

    return signer_and_request(spec, secret_key)


def load_signer() -> None:
    """Import botocore's signer now (about 0.1 s) rather than on the first signature: the CLI
    calls this once its command is starting, so the import overlaps the command's own start."""
    import alien.platforms.aws.botocore_signer  # noqa: F401


def compute_signature(spec: SigningSpec, secret_key: str) -> str:
    """The hex SigV4 signature of ``spec`` under ``secret_key``."""
    signer, request = _signer_and_request(spec, secret_key)
    string_to_sign = signer.string_to_sign(request, signer.canonical_request(request))
    return signer.signature(string_to_sign, request)


def authorization_header(spec: SigningSpec, access_key: str, signature: str) -> str:
    """The ``Authorization`` header value for a signature computed over ``spec``."""
    scope = CredentialScope(access_key, spec.amz_date[:8], spec.region, spec.service)
    return (
        f"{ALGORITHM} Credential={scope}, SignedHeaders={spec.signed_header_names}, "
        f"Signature={signature}"
    )


def _pick_signed_headers(headers: Headers, names: Sequence[str]) -> list[tuple[str, str]]:
    picked: list[tuple[str, str]] = []
    for name in names:
        values = header_values(headers, name)
        if not values:
            raise _refuse(f"signed header {name!r} is missing from the request", _INCOMPLETE)
        picked.extend((name, value) for value in values)
    return picked


def _check_key(scope: CredentialScope, access_key: str) -> None:
    if not hmac.compare_digest(scope.access_key.encode(), access_key.encode()):
        raise _refuse("the access key id is not this session's", "InvalidClientTokenId")


def _check_signature(spec: SigningSpec, secret_key: str, signature: str) -> None:
    expected = compute_signature(spec, secret_key)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise _refuse(
            "the request signature does not match the session secret", "SignatureDoesNotMatch"
        )


def verify_header_auth(
    method: str,
    target: str,
    headers: Headers,
    *,
    payload_hash: str,
    access_key: str,
    secret_key: str,
    now: datetime,
    max_skew: timedelta = DEFAULT_MAX_SKEW,
) -> HeaderAuth:
    """Verify a header-signed request; return its parsed authorization.

    ``payload_hash`` is the request's ``x-amz-content-sha256`` or, when the caller sent none, the
    SHA-256 of the body. Refuses a wrong key id, a skewed ``x-amz-date``, a signed header that is
    absent, an unsigned ``host`` or ``x-amz-date``, and of course a wrong signature.
    """
    authorization = header_value(headers, "authorization")
    if authorization is None:
        raise _refuse("request is not signed", "MissingAuthenticationToken")
    auth = parse_authorization(authorization)
    _check_key(auth.scope, access_key)
    for required in ("host", "x-amz-date"):
        if required not in auth.signed_headers:
            raise _refuse(f"{required!r} must be a signed header", _INCOMPLETE)
    amz_date = header_value(headers, "x-amz-date") or ""
    moment = parse_amz_date(amz_date)
    if abs(now - moment) > max_skew:
        raise _refuse(
            "x-amz-date is more than 5 minutes away from the proxy's clock",
            "RequestTimeTooSkewed",
            "x-amz-date",
        )
    if amz_date[:8] != auth.scope.date:
        raise _refuse("credential date and x-amz-date disagree", "SignatureDoesNotMatch")
    spec = SigningSpec(
        method=method,
        target=target,
        headers=_pick_signed_headers(headers, auth.signed_headers),
        payload_hash=payload_hash,
        amz_date=amz_date,
        region=auth.scope.region,
        service=auth.scope.service,
    )
    _check_signature(spec, secret_key, auth.signature)
    return auth


def without_query_params(target: str, names: Iterable[str]) -> str:
    """``target`` with the named query parameters removed; every other byte kept as is."""
    drop = frozenset(names)
    path, pairs = split_target(target)
    kept = [pair for pair in pairs if unquote(pair.partition("=")[0]) not in drop]
    return f"{path}?{'&'.join(kept)}" if kept else path


def presigned_payload_hash(service: str, headers: Headers) -> str:
    """The payload hash a presigned request was signed with (S3 signs none)."""
    declared = header_value(headers, "x-amz-content-sha256")
    if declared is not None:
        return declared
    return UNSIGNED_PAYLOAD if service in S3_SIGNING_NAMES else EMPTY_SHA256


def verify_query_auth(
    method: str,
    target: str,
    headers: Headers,
    *,
    access_key: str,
    secret_key: str,
    now: datetime,
    max_skew: timedelta = DEFAULT_MAX_SKEW,
) -> QueryAuth:
    """Verify a presigned URL: key id, validity window (``X-Amz-Date`` + ``X-Amz-Expires``)
    and signature."""
    auth = parse_query_auth(target)
    _check_key(auth.scope, access_key)
    if "host" not in auth.signed_headers:
        raise _refuse("'host' must be a signed header", _QUERY_ERROR)
    signed_at = parse_amz_date(auth.amz_date, field="X-Amz-Date")
    if signed_at - now > max_skew:
        raise _refuse("X-Amz-Date is in the future", "RequestTimeTooSkewed", "X-Amz-Date")
    if now > signed_at + timedelta(seconds=auth.expires):
        raise _refuse("the presigned URL has expired", "AccessDenied", "X-Amz-Expires")
    if auth.amz_date[:8] != auth.scope.date:
        raise _refuse("credential date and X-Amz-Date disagree", "SignatureDoesNotMatch")
    spec = SigningSpec(
        method=method,
        target=without_query_params(target, ["X-Amz-Signature"]),
        headers=_pick_signed_headers(headers, auth.signed_headers),
        payload_hash=presigned_payload_hash(auth.scope.service, headers),
        amz_date=auth.amz_date,
        region=auth.scope.region,
        service=auth.scope.service,
    )
    _check_signature(spec, secret_key, auth.signature)
    return auth
