"""Content-addressed blob store on the local filesystem (code packages, command payloads).

A blob lives at ``<blob_dir>/sha256/<first 2 hex>/<all 64 hex>``. Uploads stream into a temporary
file in the same filesystem while being hashed, are checked against the size limit and (when the
client declared one) the expected digest, and are then linked into place atomically: a reader
never sees a half-written blob, and uploading the same bytes twice stores them once. Nothing here
holds a whole package in memory. A caller that may only know after the upload whether the bytes
belong in the store (a command result: is its lease still current?) stages them first and places
them once it knows, so a refused upload never touches a file someone else's upload stored.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import anyio

from alien.errors import Conflict, PayloadTooLarge, ValidationError

_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class BlobInfo:
    digest: str
    size: int


@dataclass(frozen=True)
class StagedBlob:
    """Uploaded bytes, hashed, in the store's temporary directory: not in the store yet."""

    info: BlobInfo
    path: Path


def check_digest(value: str, *, field: str = "digest") -> str:
    """``value`` if it is ``sha256:<64 lowercase hex>``, else a ``ValidationError`` on ``field``."""
    if not _DIGEST_RE.fullmatch(value):
        raise ValidationError("digest must look like sha256:<64 lowercase hex>", field=field)
    return value


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._tmp = root / "tmp"
        self._tmp.mkdir(parents=True, exist_ok=True)

    def path_for(self, digest: str) -> Path:
        hexdigest = check_digest(digest).removeprefix("sha256:")
        return self.root / "sha256" / hexdigest[:2] / hexdigest

    def stat(self, digest: str) -> BlobInfo | None:
        try:
            size = self.path_for(digest).stat().st_size
        except FileNotFoundError:
            return None
        return BlobInfo(digest=digest, size=size)

    async def put_stream(
        self,
        chunks: AsyncIterator[bytes],
        *,
        max_bytes: int,
        expected_digest: str | None = None,
    ) -> BlobInfo:
        """Store the streamed bytes; raise before storing anything on a limit or digest mismatch."""
        staged = await self.stage(chunks, max_bytes=max_bytes, expected_digest=expected_digest)
        try:
            self.place(staged)
        finally:
            self.discard(staged)
        return staged.info

    async def stage(
        self,
        chunks: AsyncIterator[bytes],
        *,
        max_bytes: int,
        expected_digest: str | None = None,
    ) -> StagedBlob:
        """Write the streamed bytes, hashed, to a temporary file beside the store (nothing is
        left on a limit or digest mismatch), for a caller that decides only then whether they
        belong in the store: it places them (:meth:`place`) or not, then discards the staged
        file (:meth:`discard`)."""
        if expected_digest is not None:
            check_digest(expected_digest)
        hasher = hashlib.sha256()
        size = 0
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp, prefix="upload-")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > max_bytes:
                        raise PayloadTooLarge(
                            f"package exceeds the limit of {max_bytes} bytes", field="body"
                        )
                    hasher.update(chunk)
                    await anyio.to_thread.run_sync(out.write, chunk)
                await anyio.to_thread.run_sync(_flush_and_sync, out)
            digest = "sha256:" + hasher.hexdigest()
            if expected_digest is not None and digest != expected_digest:
                raise ValidationError(
                    f"uploaded bytes hash to {digest}, not the declared digest",
                    field="digest",
                    code="DIGEST_MISMATCH",
                )
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return StagedBlob(BlobInfo(digest=digest, size=size), tmp)

    def place(self, staged: StagedBlob) -> None:
        """Put ``staged`` into the store under its digest, atomically (a hard link: a reader
        never sees half a blob). The staged file stays until discarded, so placing it again —
        a retried transaction does — is harmless; so is a file of that digest already there,
        which holds the same bytes by its name."""
        final = self.path_for(staged.info.digest)
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(staged.path, final)
        except FileExistsError:
            pass
        except FileNotFoundError:
            raise Conflict(
                "the upload was discarded before it could be stored; retry", field="body"
            ) from None

    @staticmethod
    def discard(staged: StagedBlob) -> None:
        """Remove the staged file (placed or not: the store keeps its own link)."""
        staged.path.unlink(missing_ok=True)


def _flush_and_sync(out: BinaryIO) -> None:
    out.flush()
    os.fsync(out.fileno())
