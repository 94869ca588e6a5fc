"""Release packages on the agent's disk: download, verify, unpack once, keep for rollbacks.

A release is usable here once ``packages/<release>/`` exists: it is only renamed into place after
the download matched the announced size and sha256, the archive unpacked safely, and the packaged
manifest matched the release's manifest digest. So the directory's existence means "complete and
verified", and the agent can bring the last good release back after a restart without the
manager. Unpacking happens in a scratch directory, in a child process with memory, CPU and time
limits (``alien.agent.unpack``): the archive is hostile, and tarfile's flaws must not exhaust the
agent's memory or stall its event loop.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alien.agent.unpack import unpack
from alien.client.aio import AsyncManagerClient
from alien.client.package import CODE_DIR, MANIFEST_FILE, PackageError
from alien.errors import ValidationError
from alien.platforms.local.area import check_name
from alien.stack.manifest import manifest_digest, manifest_from_json
from alien.stack.spec import Manifest


@dataclass(frozen=True)
class ReleaseInfo:
    """What the agent needs to fetch a release (from ``desired_release`` or ``GET /releases``)."""

    release_id: str
    manifest_digest: str
    package_digest: str
    package_size: int
    package_url: str

    @classmethod
    def from_message(cls, message: Any) -> ReleaseInfo:
        return cls(
            release_id=message.release_id,
            manifest_digest=message.manifest_digest,
            package_digest=message.package_digest,
            package_size=message.package_size,
            package_url=message.package_url,
        )


@dataclass(frozen=True)
class LocalRelease:
    release_id: str
    manifest: Manifest
    code_dir: Path


class PackageCache:
    def __init__(self, packages_dir: Path, downloads_dir: Path) -> None:
        self.root = packages_dir
        self.downloads = downloads_dir

    def path(self, release_id: str) -> Path:
        return self.root / check_name(release_id, "release")

    def has(self, release_id: str) -> bool:
        return self.path(release_id).is_dir()

    def load(self, release_id: str) -> LocalRelease:
        """A verified release from disk (``PackageError`` if it is not there or unreadable)."""
        base = self.path(release_id)
        try:
            manifest = manifest_from_json((base / MANIFEST_FILE).read_bytes())
        except FileNotFoundError:
            raise PackageError(
                f"release {release_id} is not on this machine", field="release"
            ) from None
        return LocalRelease(release_id, manifest, base / CODE_DIR)

    async def fetch(self, info: ReleaseInfo, client: AsyncManagerClient) -> LocalRelease:
        """The release from disk, downloading and verifying it first if needed."""
        if self.has(info.release_id):
            return self.load(info.release_id)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.downloads.mkdir(parents=True, exist_ok=True, mode=0o700)
        scratch = f"{info.release_id}.{uuid.uuid4().hex}"
        archive = self.downloads / f"{scratch}.tar.gz"
        unpacked = self.root / f".{scratch}"
        try:
            await client.download(
                info.package_url, archive, digest=info.package_digest, size=info.package_size
            )
            await unpack(archive, unpacked)
            manifest = await asyncio.to_thread(_check_manifest, unpacked, info)
            (unpacked / CODE_DIR).mkdir(exist_ok=True)
            unpacked.rename(self.path(info.release_id))
        finally:
            archive.unlink(missing_ok=True)
            if unpacked.exists():
                shutil.rmtree(unpacked, ignore_errors=True)
        return LocalRelease(info.release_id, manifest, self.path(info.release_id) / CODE_DIR)

    def prune(self, keep: Iterable[str | None]) -> None:
        """Delete every package (and leftover scratch) except the ``keep`` releases."""
        kept = {k for k in keep if k}
        if self.root.is_dir():
            for entry in self.root.iterdir():
                if entry.name not in kept:
                    shutil.rmtree(entry, ignore_errors=True)
        if self.downloads.is_dir():
            for entry in self.downloads.iterdir():
                entry.unlink(missing_ok=True)


def _check_manifest(unpacked: Path, info: ReleaseInfo) -> Manifest:
    """The packaged manifest, if it is the release's (same canonical digest)."""
    manifest = manifest_from_json((unpacked / MANIFEST_FILE).read_bytes())
    digest = manifest_digest(manifest)
    if digest != info.manifest_digest:
        raise ValidationError(
            f"the package's manifest ({digest}) is not the release's ({info.manifest_digest})",
            field="manifest_digest",
            code="PACKAGE_MISMATCH",
        )
    return manifest
