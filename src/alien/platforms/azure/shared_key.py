"""Azure Storage Shared Key for the Blob service (version 2009-09-19 and later): the string to
sign, the signature, signing a request and verifying one.

The loopback endpoint hands ``az`` a per-session dummy account key; the only proof that a call
comes from the session's child process is a valid Shared Key signature made with that key, so the
endpoint verifies it (:func:`verify`). The agent then signs the same call with the real key
(:func:`sign`). Both sides must agree byte for byte with what the service and its clients compute,
so the canonicalisation follows what the service checks and what azure-storage-blob's
``SharedKeyCredentialPolicy`` (the signer under ``az storage``) sends, where the documentation
says less or something else:

* ``x-ms-*`` headers are ordered the way the service orders them, not by code point: ``-`` and
  ``'`` are ignored at first and only break ties (``x-ms-meta-ab`` before ``x-ms-meta-a-z``).
* A header value loses its leading and trailing blanks (an HTTP parser drops them anyway), but
  runs of blanks inside it are kept: the clients sign values as they send them, and the service
  accepts those signatures.
* The path is the one on the wire, percent-encoding and all; query names and values are decoded
  (``%XX``; ``+`` stays ``+``), names lower-cased and sorted, repeated values sorted and joined
  by commas.
* When ``x-ms-date`` is present the ``Date`` line is empty (the service ignores ``Date`` then: a
  proxy may set it), and :func:`sign` drops such a ``Date``, since the Azurite emulator would sign
  it.
* A signed header sent twice is refused rather than joined: no Azure client sends one twice, and
  refusing is the one reading that cannot let this module and the service see different values.

Sans-I/O, stdlib only, no clock of its own: ``now`` is always passed in.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

from alien.errors import Forbidden, ValidationError
from alien.protocol.http_exchange import RequestHead

SCHEME = "SharedKey"
MAX_SKEW = timedelta(minutes=15)
"""How far ``x-ms-date`` may be from the verifier's clock, either way (the service's own limit)."""

AZURE_SIGNATURE_MISSING = "AZURE_SIGNATURE_MISSING"
AZURE_SIGNATURE_UNSUPPORTED = "AZURE_SIGNATURE_UNSUPPORTED"
AZURE_SIGNATURE_MALFORMED = "AZURE_SIGNATURE_MALFORMED"
AZURE_SIGNATURE_MISMATCH = "AZURE_SIGNATURE_MISMATCH"
AZURE_ACCOUNT_MISMATCH = "AZURE_ACCOUNT_MISMATCH"
AZURE_DATE_INVALID = "AZURE_DATE_INVALID"
AZURE_REQUEST_EXPIRED = "AZURE_REQUEST_EXPIRED"
AZURE_HEADER_REPEATED = "AZURE_HEADER_REPEATED"

_STANDARD_HEADERS = (
    "content-encoding",
    "content-language",
    "content-length",
    "content-md5",
    "content-type",
    "date",
    "if-modified-since",
    "if-match",
    "if-none-match",
    "if-unmodified-since",
    "range",
)
_BLANKS = " \t"

# The service's header order: a weight per character, ignoring '-' and '\'' (and anything that
# cannot be in a header name) at first; then, for names equal so far, '-' and '\'' decide.
_PRIMARY = {c: w for w, c in enumerate("!#$%&*.^_`|~+0123456789abcdefghijklmnopqrstuvwxyz", 2)}
_TIE_BREAK = {"'": 2, "-": 3}
_END = 1

_SIGNATURE_RE = re.compile(r"[A-Za-z0-9+/]{43}=")
_SCHEME_RE = re.compile(r"[A-Za-z0-9._-]{1,32}")
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_RFC1123_RE = re.compile(
    rf"({'|'.join(_DAYS)}), ([0-9]{{2}}) ({'|'.join(_MONTHS)}) ([0-9]{{4}}) "
    r"([0-9]{2}):([0-9]{2}):([0-9]{2}) GMT"
)


def _header_order(name: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    primary = tuple(_PRIMARY[c] for c in name if c in _PRIMARY)
    return primary, (*(_TIE_BREAK.get(c, 0) for c in name), _END)


def _repeated(name: str) -> ValidationError:
    return ValidationError(
        f"the {name} header is sent more than once; a signed call carries it once",
        field=name,
        code=AZURE_HEADER_REPEATED,
    )


def _single(head: RequestHead, name: str) -> str | None:
    """The one value of header ``name`` (lower-case), or None; sent twice, it is refused."""
    values = [value for key, value in head.headers if key.lower() == name]
    if len(values) > 1:
        raise _repeated(name)
    return values[0].strip(_BLANKS) if values else None


def _canonical_headers(head: RequestHead) -> str:
    values: dict[str, str] = {}
    for key, value in head.headers:
        name = key.lower()
        if name.startswith("x-ms-"):
            if name in values:
                raise _repeated(name)
            values[name] = value.strip(_BLANKS)
    return "".join(f"{name}:{values[name]}\n" for name in sorted(values, key=_header_order))


def _query(target: str) -> dict[str, list[str]]:
    """The decoded query of ``target``: lower-cased name to its values, in order."""
    _, sep, query = target.partition("?")
    params: dict[str, list[str]] = {}
    for pair in query.split("&") if sep else []:
        if pair:
            name, _, value = pair.partition("=")
            params.setdefault(unquote(name).lower(), []).append(unquote(value))
    return params


def _canonical_resource(target: str, account: str) -> str:
    path = target.partition("?")[0]
    params = _query(target)
    lines = "".join(f"\n{name}:{','.join(sorted(params[name]))}" for name in sorted(params))
    return f"/{account}{path}{lines}"


def string_to_sign(head: RequestHead, account: str) -> str:
    """What Shared Key signs for ``head`` (``target``: the path and query as sent)."""
    values = {name: _single(head, name) or "" for name in _STANDARD_HEADERS}
    if values["content-length"] == "0":
        values["content-length"] = ""
    if _single(head, "x-ms-date") is not None:
        values["date"] = ""
    lines = "".join(f"{values[name]}\n" for name in _STANDARD_HEADERS)
    resource = _canonical_resource(head.target, account)
    return f"{head.method}\n{lines}{_canonical_headers(head)}{resource}"


def signature(head: RequestHead, account: str, key: bytes) -> str:
    """The base64 HMAC-SHA256 of the string to sign under the (decoded) account ``key``."""
    # surrogatepass: never raises; a value read off the wire (latin-1) holds no surrogate anyway.
    message = string_to_sign(head, account).encode("utf-8", "surrogatepass")
    return base64.b64encode(hmac.digest(key, message, hashlib.sha256)).decode("ascii")


def sign(head: RequestHead, account: str, key: bytes) -> RequestHead:
    """``head`` with its ``Authorization`` (if any) replaced by ours; a ``Date`` next to an
    ``x-ms-date`` is dropped. Every other header stays, in order."""
    has_ms_date = _single(head, "x-ms-date") is not None
    dropped = {"authorization", "date"} if has_ms_date else {"authorization"}
    kept = tuple((k, v) for k, v in head.headers if k.lower() not in dropped)
    unsigned = RequestHead(head.method, head.target, kept)
    value = f"{SCHEME} {account}:{signature(unsigned, account, key)}"
    return RequestHead(head.method, head.target, (*kept, ("authorization", value)))


def _refuse(message: str, code: str, field: str = "authorization") -> Forbidden:
    """A refusal: 403, as the service answers a failed authentication."""
    return Forbidden(message, field=field, code=code)


def _claimed(head: RequestHead) -> tuple[str, str]:
    """The account and signature of the request's ``Authorization: SharedKey account:sig``."""
    if "sig" in _query(head.target):
        raise _refuse(
            "a shared access signature is not accepted: sign with the session's account key",
            AZURE_SIGNATURE_UNSUPPORTED,
            "sig",
        )
    values = [value for key, value in head.headers if key.lower() == "authorization"]
    if not values:
        raise _refuse("the call is not signed with the session's key", AZURE_SIGNATURE_MISSING)
    if len(values) > 1:
        raise _refuse("the Authorization header is sent more than once", AZURE_SIGNATURE_MALFORMED)
    scheme, _, credential = values[0].strip(_BLANKS).partition(" ")
    if scheme != SCHEME:
        named = repr(scheme) if _SCHEME_RE.fullmatch(scheme) else "this scheme"
        raise _refuse(f"only {SCHEME} is accepted, not {named}", AZURE_SIGNATURE_UNSUPPORTED)
    account, colon, claimed = credential.strip(_BLANKS).partition(":")
    if not colon or not _SIGNATURE_RE.fullmatch(claimed):
        raise _refuse(
            f"the Authorization header must be '{SCHEME} <account>:<base64 signature>'",
            AZURE_SIGNATURE_MALFORMED,
        )
    return account, claimed


def parse_date(value: str | None, field: str) -> datetime:
    """An RFC 1123 date (``Tue, 04 Mar 2025 10:15:30 GMT``) as an aware UTC datetime."""
    match = _RFC1123_RE.fullmatch(value) if value is not None else None
    try:
        if match is None:
            raise ValueError(value)
        day_name, day, month, year, hour, minute, second = match.groups()
        numbers = (int(year), _MONTHS.index(month) + 1, int(day), int(hour), int(minute))
        moment = datetime(*numbers, int(second), tzinfo=UTC)
        if _DAYS[moment.weekday()] != day_name:
            raise ValueError(value)
    except ValueError:
        raise _refuse(
            f"{field} must be an RFC 1123 date such as 'Tue, 04 Mar 2025 10:15:30 GMT'",
            AZURE_DATE_INVALID,
            field,
        ) from None
    return moment


def format_date(moment: datetime) -> str:
    """``moment`` (aware) as an RFC 1123 date, the form of ``x-ms-date``."""
    utc = moment.astimezone(UTC)
    return (
        f"{_DAYS[utc.weekday()]}, {utc.day:02d} {_MONTHS[utc.month - 1]} {utc.year:04d} "
        f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d} GMT"
    )


def check_date(head: RequestHead, now: datetime, max_skew: timedelta = MAX_SKEW) -> None:
    """Refuse ``head`` unless its ``x-ms-date`` (or ``Date``) is within ``max_skew`` of ``now``:
    what Azure requires of a signed call, so a signature cannot be replayed later."""
    ms_date = _single(head, "x-ms-date")
    field = "x-ms-date" if ms_date is not None else "date"
    moment = parse_date(ms_date if ms_date is not None else _single(head, "date"), field)
    if abs(now - moment) > max_skew:
        minutes = int(max_skew.total_seconds() // 60)
        raise _refuse(
            f"{field} is more than {minutes} minutes away from the endpoint's clock",
            AZURE_REQUEST_EXPIRED,
            field,
        )


def verify(
    head: RequestHead, account: str, key: bytes, now: datetime, max_skew: timedelta = MAX_SKEW
) -> None:
    """Accept ``head`` only if it is signed with Shared Key for ``account`` under ``key``, and
    its ``x-ms-date`` (or ``Date``) is within ``max_skew`` of ``now``; raise ``Forbidden`` (or
    ``ValidationError`` for a signed header sent twice) otherwise."""
    claimed_account, claimed = _claimed(head)
    if claimed_account != account:
        raise _refuse("the call is signed for another storage account", AZURE_ACCOUNT_MISMATCH)
    check_date(head, now, max_skew)
    expected = signature(head, account, key)
    if not hmac.compare_digest(expected.encode("ascii"), claimed.encode("ascii")):
        raise _refuse("the signature does not match the session's key", AZURE_SIGNATURE_MISMATCH)


def parse_key(value: str, field: str) -> bytes:
    """A base64 account key (as the portal and connection strings show it), decoded."""
    try:
        key = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError("the account key is not base64", field=field) from None
    if not key:
        raise ValidationError("the account key is empty", field=field)
    return key


def new_account_key() -> str:
    """A fresh random account key (base64 of 64 bytes, like Azure's), for a session's dummy."""
    return base64.b64encode(secrets.token_bytes(64)).decode("ascii")
