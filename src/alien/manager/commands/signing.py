"""Signed, expiring URLs for command payloads and responses (HMAC-SHA256).

Who presents these URLs has no token: a function runtime inside the customer's environment
uploading a large result, or fetching large params, or posting its response. So each URL carries
its own authority: what it allows (``op``), for which command of which deployment, until when, and
an HMAC over exactly that with a secret only the manager knows. Changing any part invalidates
the signature; a URL past its ``exp`` is refused even with a valid signature.

The secret is 32 random bytes in ``<data dir>/command-url.key`` (mode 0600), created on first
start and kept across restarts so URLs handed out before a restart stay valid. It never leaves
the manager and is never logged.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import secrets
import tempfile
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import quote

from alien.errors import Forbidden, ValidationError

KEY_FILE = "command-url.key"
KEY_BYTES = 32
_VERSION = "v1"


class UrlOp(StrEnum):
    """What a signed URL lets its holder do; part of the signed message."""

    PARAMS_GET = "params-get"
    RESULT_PUT = "result-put"
    RESULT_GET = "result-get"
    RESPOND = "respond"


class SignedUrlRefused(Forbidden):
    """A signed URL that is expired, tampered with, or not for this request (403)."""

    code = "SIGNED_URL_INVALID"


@dataclass(frozen=True)
class Grant:
    """What a URL was signed for. ``extra`` binds more (the lease id of a response URL)."""

    op: UrlOp
    command_id: str
    deployment_id: str
    expires: int
    extra: str = ""


class UrlSigner:
    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValidationError(f"the URL signing key must be {KEY_BYTES} bytes", field="key")
        self._key = key

    def __repr__(self) -> str:
        return "UrlSigner(<secret>)"

    @classmethod
    def load_or_create(cls, data_dir: Path) -> UrlSigner:
        """The data dir's key, created (0600, atomically) if it does not exist yet."""
        path = data_dir / KEY_FILE
        if not path.exists():
            _create_key_file(path)
        key = path.read_bytes()
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
        return cls(key)

    def signature(self, grant: Grant) -> str:
        parts = (_VERSION, grant.op.value, grant.command_id, grant.deployment_id, grant.extra)
        message = "\n".join((*parts, str(grant.expires))).encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def query(self, grant: Grant) -> str:
        """The query string carrying ``grant`` and its signature."""
        # Spelled by hand: ``urlencode`` cost three times as much, and two of these are made for
        # every delivery. ``sig`` is base64url and ``exp`` digits: neither needs quoting.
        lease = f"&lease={quote(grant.extra, safe='')}" if grant.extra else ""
        dep = quote(grant.deployment_id, safe="")
        return f"dep={dep}&exp={grant.expires}{lease}&sig={self.signature(grant)}"

    def verify(self, grant: Grant, signature: str | None, *, now: float | None = None) -> None:
        """Raise :class:`SignedUrlRefused` unless ``signature`` signs ``grant`` and it is current.

        The signature is checked first (constant time), so an attacker learns nothing about
        expiry from a forged URL.
        """
        if not signature or not hmac.compare_digest(signature, self.signature(grant)):
            raise SignedUrlRefused("this URL's signature is not valid", field="sig")
        if (time.time() if now is None else now) >= grant.expires:
            raise SignedUrlRefused("this URL has expired", field="exp", code="SIGNED_URL_EXPIRED")


def _create_key_file(path: Path) -> None:
    """Write a fresh key next to ``path`` and link it into place: a concurrent start either wins
    or reads the winner's complete file, never a half-written one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".command-url-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(secrets.token_bytes(KEY_BYTES))
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp_name, 0o600)
        with contextlib.suppress(FileExistsError):  # a concurrent start won: use its key
            os.link(tmp_name, path)
    finally:
        os.unlink(tmp_name)
