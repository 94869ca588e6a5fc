"""Bearer token formats, generation and verification.

A token is ``ax_<kind>_<lookup>_<secret>``:

* ``kind`` says what it is: ``key`` (API key), ``dg`` (deployment-group onboarding token),
  ``dep`` (a deployment's agent token) or ``dbg`` (one debug session's short-lived token). A
  token of one kind is never accepted where another is expected, so a leaked group token can
  only ever onboard.
* ``lookup`` is 16 hex characters, stored in clear and indexed: it finds the row without scanning.
* ``secret`` is 32 random bytes (256 bits), URL-safe base64.

Only ``sha256(token)`` is stored. A slow password KDF (bcrypt, argon2) exists to make guessing
*low-entropy* secrets expensive; a 256-bit random secret cannot be guessed, so a single fast hash
is enough and keeps every authenticated request cheap. Hashes are compared in constant time.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from alien.errors import ValidationError
from alien.redaction import add_secret

_LOOKUP_LEN = 16
_SECRET_BYTES = 32


class TokenKind(enum.StrEnum):
    API_KEY = "key"
    GROUP = "dg"
    DEPLOYMENT = "dep"
    DEBUG_SESSION = "dbg"


@dataclass(frozen=True)
class IssuedToken:
    """A freshly generated token: ``value`` goes to the caller once, the rest is stored."""

    kind: TokenKind
    lookup: str
    value: str

    @property
    def hash(self) -> str:
        return hash_token(self.value)


@dataclass(frozen=True)
class ParsedToken:
    kind: TokenKind
    lookup: str
    value: str


def issue(kind: TokenKind) -> IssuedToken:
    """A fresh token, registered with the process redactor before anyone can write it down."""
    lookup = secrets.token_hex(_LOOKUP_LEN // 2)
    secret = secrets.token_urlsafe(_SECRET_BYTES)
    value = f"ax_{kind.value}_{lookup}_{secret}"
    add_secret(value)
    return IssuedToken(kind=kind, lookup=lookup, value=value)


def hash_token(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def parse(value: str) -> ParsedToken | None:
    """Split a presented token into its parts; ``None`` when it is not one of ours at all."""
    for kind in TokenKind:
        head = f"ax_{kind.value}_"
        if not value.startswith(head):
            continue
        rest = value[len(head) :]
        if len(rest) <= _LOOKUP_LEN:
            return None
        lookup, sep, secret = rest[:_LOOKUP_LEN], rest[_LOOKUP_LEN], rest[_LOOKUP_LEN + 1 :]
        if sep != "_" or len(secret) < 43 or not _is_hex(lookup):
            return None
        return ParsedToken(kind=kind, lookup=lookup, value=value)
    return None


def parse_strict(value: str, kind: TokenKind, *, field: str) -> ParsedToken:
    """Parse a token supplied as configuration (e.g. ``ALIEN_ADMIN_KEY``); errors name ``field``."""
    parsed = parse(value)
    if parsed is None or parsed.kind is not kind:
        raise ValidationError(
            f"not a valid {kind.value!r} token (expected ax_{kind.value}_<16 hex>_<secret>)",
            field=field,
        )
    return parsed


def matches(value: str, stored_hash: str) -> bool:
    """Constant-time comparison of a presented token against a stored hash."""
    return hmac.compare_digest(hash_token(value), stored_hash)


def _is_hex(text: str) -> bool:
    return len(text) == _LOOKUP_LEN and all(c in "0123456789abcdef" for c in text)
