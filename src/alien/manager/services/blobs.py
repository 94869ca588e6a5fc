"""Which package blobs a caller may see: the store is shared, what each scope uploaded is not.

The blob store is content-addressed, so two groups uploading the same bytes share one file. A key
scoped to deployment groups sees (``GET /v1/blobs/{digest}``) and releases only the blobs
uploaded by a key scoped to one of its groups (``blob_groups``); any other blob, stored or not,
is "no such blob" to it, so a digest learnt elsewhere neither confirms another group's package
nor lets it release that package to itself and download it. Unscoped keys see every blob.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from alien.manager.blobs import BlobInfo, BlobStore
from alien.manager.models import BlobGroup


def record_upload(session: Session, digest: str, groups: Collection[str] | None) -> None:
    """Let ``groups`` (a scoped uploader's) see ``digest`` from now on.

    An unscoped upload records nothing: unscoped keys see every blob. Uploading bytes another
    scope stored already is how a scope gets its own association; a repeat changes nothing
    (``ON CONFLICT DO NOTHING``, so concurrent uploads of one package do not collide).
    """
    if not groups:
        return
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    rows = [{"digest": digest, "group_id": group} for group in sorted(groups)]
    session.execute(dialect.insert(BlobGroup).values(rows).on_conflict_do_nothing())


def visible_blob(
    session: Session, blobs: BlobStore, digest: str, groups: Collection[str] | None
) -> BlobInfo | None:
    """The stored blob if a caller with ``groups`` (``None``: unscoped) may see it, else ``None``
    — the same answer as for a digest nobody uploaded."""
    if groups is not None:
        shared = select(BlobGroup.digest).where(
            BlobGroup.digest == digest, BlobGroup.group_id.in_(groups)
        )
        if session.scalar(shared.limit(1)) is None:
            return None
    return blobs.stat(digest)
