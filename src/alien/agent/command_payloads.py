"""Large command payloads on the agent: params fetched from a signed URL, results uploaded to one.

Params over the inline limit reach the agent as a ``params_ref`` (signed URL, size, sha256). They
are streamed to a private temporary file in the area (``<area>/run/commands/``: it dies with the
platform process, like the control sockets beside it) while being hashed, and handed to the
dispatcher as that file, which streams it to the function: the agent never holds more than a
chunk of them, and a short, long or tampered blob is refused before a byte of it reaches the
handler. Results too large to travel inline come back from the function as their JSON document
(spooled to a file in the same directory by the dispatcher) and are ``PUT`` from there to the
delivery's signed upload URL (the dispatcher's ``offload`` hook); the manager answers the
``BlobRef`` to report.

The signed URLs are the authority (no token): this client sends none, so the deployment token is
never handed to whatever host a URL names.

The transfers use aiohttp, whose reader pauses the socket from inside ``data_received`` once its
buffer is full. httpx (through anyio) pauses only when its reader coroutine next runs, and on
uvloop (which the agent ran on then; it is back on asyncio's loop, see ``cli/deploy.py``) libuv
reads up to 32 buffers in a row before that: a fast manager then put megabytes into the agent's
memory per params download.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

import aiohttp
from yarl import URL

from alien.client.transport import CHUNK_BYTES, USER_AGENT
from alien.errors import AlienError, PlatformError, ValidationError
from alien.platforms.dispatch import ResultDocument, ResultOffload
from alien.protocol.command_messages import INVALID_PARAMS, BlobRef
from alien.protocol.wire import parse

RESULT_UPLOAD_FAILED = "RESULT_UPLOAD_FAILED"
"""The handler succeeded but its large result could not be stored through the upload URL."""
TRANSFER_TIMEOUT = 300.0


class CommandPayloads:
    """Downloads params blobs into ``work_dir`` and uploads result documents (one HTTP pool)."""

    def __init__(self, work_dir: Path, *, timeout: float = TRANSFER_TIMEOUT) -> None:
        self.work_dir = work_dir
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=10.0)
        self._http: aiohttp.ClientSession | None = None

    def _session(self) -> aiohttp.ClientSession:
        """Created on first use: a session belongs to the loop it was made on."""
        if self._http is None:
            self._http = aiohttp.ClientSession(
                headers={"User-Agent": USER_AGENT}, timeout=self._timeout
            )
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def download(self, ref: BlobRef) -> Path:
        """Stream ``ref`` into a new 0600 file in ``work_dir``; its path once size and sha256
        match (the caller removes it). Any failure removes the partial file."""
        await asyncio.to_thread(self.work_dir.mkdir, mode=0o700, parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="params-", suffix=".json", dir=self.work_dir)
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                digest, size = await self._stream_into(ref, out)
            if size != ref.size:
                raise _invalid(f"the params blob has {size} bytes, not the announced {ref.size}")
            if digest != ref.sha256:
                raise _invalid("the params blob does not match its sha256")
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path

    async def _stream_into(self, ref: BlobRef, out: BinaryIO) -> tuple[str, int]:
        """Write the blob to ``out`` as it arrives; its sha256 (hex) and size."""
        hasher = hashlib.sha256()
        size = 0
        try:
            async with self._session().get(_exact(ref.url), allow_redirects=False) as response:
                if response.status >= 400:
                    raise _invalid(f"the params blob could not be fetched (HTTP {response.status})")
                async for chunk in response.content.iter_any():  # as received: no re-chunking
                    size += len(chunk)
                    if size > ref.size:
                        raise _invalid(f"the params blob is larger than the announced {ref.size}")
                    hasher.update(chunk)
                    out.write(chunk)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _invalid(f"the params blob could not be fetched: {type(exc).__name__}") from None
        return hasher.hexdigest(), size

    def offload_to(self, url: str) -> ResultOffload:
        """The ``offload`` hook for one delivery: ``PUT`` the document to its upload URL."""

        async def offload(document: ResultDocument) -> BlobRef:
            size = document.stat().st_size if isinstance(document, Path) else len(document)
            headers = {"Content-Type": "application/json", "Content-Length": str(size)}
            try:
                async with self._session().put(
                    _exact(url), data=_chunks(document), headers=headers, allow_redirects=False
                ) as response:
                    body = await response.read()
                    if response.status >= 400:
                        text = body[:200].decode("utf-8", "replace")
                        raise _upload_failed(f"HTTP {response.status}: {text}")
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise _upload_failed(f"{type(exc).__name__}") from None
            try:
                return parse(BlobRef, body)
            except AlienError:
                raise _upload_failed(
                    "the manager answered something other than a BlobRef"
                ) from None

        return offload


async def _chunks(document: ResultDocument) -> AsyncIterator[bytes]:
    """``document`` in chunks (read from its file, or sliced: sent whole, the HTTP layer would
    join it into one more copy)."""
    if isinstance(document, Path):
        with document.open("rb") as fh:
            while chunk := fh.read(CHUNK_BYTES):
                yield chunk
        return
    for start in range(0, len(document), CHUNK_BYTES):
        yield document[start : start + CHUNK_BYTES]


def _exact(url: str) -> URL:
    """The signed URL byte for byte (aiohttp would otherwise re-quote it, breaking the
    signature over its query)."""
    return URL(url, encoded=True)


def _invalid(message: str) -> ValidationError:
    return ValidationError(message, field="params_ref", code=INVALID_PARAMS)


def _upload_failed(reason: str) -> PlatformError:
    return PlatformError(
        f"the result could not be uploaded: {reason}", field="result", code=RESULT_UPLOAD_FAILED
    )
