"""``/v1/blobs`` and ``/v1/releases``: upload a code package, create releases, fetch them.

Creating a release is two steps so neither the manager nor the client ever holds a package in
memory: stream the package to ``POST /v1/blobs`` (raw body; the answer is its sha256 digest),
then ``POST /v1/releases`` with the manifest, that digest and the targets. Uploading the same
bytes again is cheap (content-addressed), and ``GET /v1/blobs/{digest}`` tells whether a
package is already there. A key scoped to deployment groups sees only the blobs uploaded within
its groups (:mod:`alien.manager.services.blobs`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from alien.errors import NotFound, PayloadTooLarge, ValidationError
from alien.manager.api.debug_views import Audit
from alien.manager.api.deps import Core, require
from alien.manager.api.views import release_detail, release_out
from alien.manager.auth import Action, Principal, authorize
from alien.manager.blobs import check_digest
from alien.manager.core import ManagerCore
from alien.manager.models import Release
from alien.manager.schemas import (
    TOO_LARGE,
    BlobOut,
    Page,
    ReleaseCreate,
    ReleaseDetail,
    ReleaseOut,
)
from alien.manager.services import blobs, releases
from alien.manager.services.deployments import assigned_deployments

router = APIRouter(tags=["releases"])
Creator = Annotated[Principal, Depends(require(Action.RELEASE_CREATE))]
Lister = Annotated[Principal, Depends(require(Action.RELEASES_LIST))]
Reader = Annotated[Principal, Depends(require(Action.RELEASE_READ))]
Downloader = Annotated[Principal, Depends(require(Action.RELEASE_DOWNLOAD))]

_BINARY_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


@router.post(
    "/v1/blobs",
    status_code=201,
    response_model=BlobOut,
    responses=TOO_LARGE,
    openapi_extra=_BINARY_BODY,
)
async def upload_blob(
    request: Request,
    core: Core,
    caller: Creator,
    digest: Annotated[
        str | None,
        Query(description="sha256:<hex> the bytes must hash to (refused with 422 otherwise)"),
    ] = None,
) -> BlobOut:
    """Stream a code package (the raw request body) into the content-addressed blob store.

    A scoped key's upload also lets its groups see the blob, even when the bytes were stored
    already (by another scope): see :mod:`alien.manager.services.blobs`."""
    limit = core.settings.max_package_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"package exceeds the limit of {limit} bytes", field="body")
    if digest is not None:
        check_digest(digest)
    info = await core.blobs.put_stream(request.stream(), max_bytes=limit, expected_digest=digest)
    if info.size == 0:
        raise ValidationError("the package is empty", field="body")
    await run_in_threadpool(_record_upload, core, info.digest, caller)
    return BlobOut(digest=info.digest, size=info.size)


def _record_upload(core: ManagerCore, digest: str, caller: Principal) -> None:
    with core.db.write() as session:
        blobs.record_upload(session, digest, caller.groups)


@router.get("/v1/blobs/{digest}", response_model=BlobOut)
def get_blob(digest: str, core: Core, caller: Creator) -> BlobOut:
    """Whether a package is already uploaded (200 with its size) or not (404). A scoped key
    gets the same 404 for a blob uploaded only outside its groups."""
    with core.db.read() as session:
        info = blobs.visible_blob(session, core.blobs, check_digest(digest), caller.groups)
    if info is None:
        raise NotFound(f"no blob {digest}", field="digest")
    return BlobOut(digest=info.digest, size=info.size)


@router.post("/v1/releases", status_code=201, response_model=ReleaseDetail)
def create_release(body: ReleaseCreate, core: Core, log: Audit, caller: Creator) -> ReleaseDetail:
    """Create an immutable release and send it to its targets at once.

    Every target deployment's desired release becomes this one (in the same transaction), and
    every connected agent among them is sent ``desired_release`` immediately after the commit.
    """
    with core.db.write() as session:
        release, targeted = releases.create_release(session, core.blobs, body, caller, log)
        out = release_detail(session, release, caller)
    core.deployments_changed(targeted)
    return out


@router.get("/v1/releases", response_model=Page[ReleaseOut])
def list_releases(
    core: Core, caller: Lister, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> Page[ReleaseOut]:
    """Newest first."""
    with core.db.read() as session:
        rows = releases.list_releases(session, limit=limit, groups=caller.groups)
        return Page(items=[release_out(session, r, caller) for r in rows])


def _visible_release(
    session: Session, caller: Principal, action: Action, release_id: str
) -> Release:
    """The release, if ``caller`` may see it: a deployment token when it is assigned to its
    deployment, a group-scoped key when it went to one of its groups or their deployments."""
    release = releases.get_release(session, release_id)
    groups = [release.target_group_id] if release.target_group_id else []
    authorize(
        caller,
        action,
        deployments=assigned_deployments(session, release.id),
        groups=groups,
        missing=NotFound(f"no release {release_id!r}", field="release_id"),
    )
    return release


@router.get("/v1/releases/{release_id}", response_model=ReleaseDetail)
def get_release(release_id: str, core: Core, caller: Reader) -> ReleaseDetail:
    with core.db.read() as session:
        release = _visible_release(session, caller, Action.RELEASE_READ, release_id)
        return release_detail(session, release, caller)


@router.get(
    "/v1/releases/{release_id}/package",
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def download_package(release_id: str, core: Core, caller: Downloader) -> FileResponse:
    """The release's code package, streamed from disk (``Digest`` header: its sha256)."""
    with core.db.read() as session:
        release = _visible_release(session, caller, Action.RELEASE_DOWNLOAD, release_id)
    path = core.blobs.path_for(release.package_digest)
    if not path.exists():
        raise NotFound("the release's package is missing from the blob store", field="package")
    return FileResponse(
        path,
        media_type="application/octet-stream",
        filename=f"{release.id}.pkg",
        headers={"X-Alien-Digest": release.package_digest},
    )
