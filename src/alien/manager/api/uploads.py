"""The body of a command payload upload, staged beside the store: refused when over the limit
or empty before anything is placed in the store.

Why staged: a file placed in the command blob store stays until retention deletes a row naming
it, so every upload that is refused after its bytes arrived must be refused before they are
placed — or its file would stay for good.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Request

from alien.errors import PayloadTooLarge, ValidationError
from alien.manager.blobs import BlobStore, StagedBlob


@asynccontextmanager
async def staged_document(
    request: Request, store: BlobStore, *, limit: int, what: str
) -> AsyncIterator[StagedBlob]:
    """The request body (``what``: "the params", "the result"), staged and hashed, for the
    caller to place or not; the staged file is removed afterwards either way. A declared size
    over ``limit`` is refused before a byte is read, an empty document once it is in (422)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"{what} document is over the limit of {limit} bytes", field="body")
    staged = await store.stage(request.stream(), max_bytes=limit)
    try:
        if staged.info.size == 0:
            raise ValidationError(f"{what} document is empty", field="body")
        yield staged
    finally:
        store.discard(staged)
