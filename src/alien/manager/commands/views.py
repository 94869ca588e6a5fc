"""Stored commands → API bodies, as of a given moment.

A view applies :func:`~alien.protocol.commands.tick` first: the state shown is the state the
command *is* in at ``now`` (a passed deadline shows ``expired`` even if the sweeper has not
written it yet), exactly what the next write would store. A large result's ``result_ref`` gets a
fresh signed URL for the caller (:mod:`.signing`).
"""

from __future__ import annotations

import time
from datetime import datetime

from alien.manager.commands.records import CommandSnapshot, record_of, with_record
from alien.manager.commands.schemas import CommandOut, ParamsRef
from alien.manager.commands.signing import Grant, UrlOp, UrlSigner
from alien.protocol.command_messages import BlobRef
from alien.protocol.commands import tick


def command_out(
    snap: CommandSnapshot,
    *,
    now: datetime,
    signer: UrlSigner,
    base_url: str,
    url_seconds: float,
    detail: bool = True,
) -> CommandOut:
    """The API body of ``snap``; ``detail=False`` leaves params and result out (listings).

    A command that ended is shown as stored (nothing can change it any more); one still live is
    shown as of ``now``."""
    if not snap.terminal:
        snap = with_record(snap, tick(record_of(snap), now))
    response = snap.response or {}
    out = CommandOut(
        id=snap.id,
        deployment_id=snap.deployment_id,
        command=snap.command,
        target=snap.target,
        state=snap.state,
        attempt=snap.attempt,
        max_attempts=snap.max_attempts,
        created_at=snap.created_at,
        deadline=snap.deadline,
        lease_expires_at=snap.lease_expires_at,
        ended_at=snap.ended_at,
        created_by=snap.created_by,
        idempotency_key=snap.idempotency_key,
        error=snap.error or response.get("error"),  # the lifecycle's, or the handler's
    )
    if snap.params_sha256 is not None:
        out.params_ref = ParamsRef(sha256=snap.params_sha256, size=snap.params_size or 0)
    if not detail:
        return out
    out.params = snap.params if snap.params_sha256 is None else None
    if response.get("ok"):
        out.result = response.get("result")
        ref = response.get("result_ref")
        if ref is not None:
            grant = Grant(
                UrlOp.RESULT_GET, snap.id, snap.deployment_id, int(time.time() + url_seconds)
            )
            url = f"{base_url}/v1/command-blobs/{snap.id}/result?{signer.query(grant)}"
            out.result_ref = BlobRef(url=url, size=ref["size"], sha256=ref["sha256"])
    return out
