"""One delivery of a command as the ``command`` message: envelope plus signed URLs.

The URLs in a delivery let whoever runs the handler — the agent, or a function runtime it hands
the envelope to, neither holding an API key — fetch large params, upload a large result and post
the response. Each is signed for this command and deployment (the result upload and response
URLs also for this lease: an attempt whose lease is gone can neither store a result nor answer)
and valid until the command's deadline, after which nothing it allows could matter.
"""

from __future__ import annotations

from alien.manager.commands.records import CommandSnapshot
from alien.manager.commands.signing import Grant, UrlOp, UrlSigner
from alien.protocol.agent_channel import CommandOffer
from alien.protocol.command_messages import BlobRef
from alien.protocol.commands import CommandRecord, envelope_for


def signed_url(signer: UrlSigner, base_url: str, path: str, grant: Grant) -> str:
    return f"{base_url}{path}?{signer.query(grant)}"


def build_offer(
    row: CommandSnapshot, record: CommandRecord, *, base_url: str, signer: UrlSigner
) -> CommandOffer:
    """The ``command`` message delivering ``record``'s current lease (dispatched or leased)."""
    assert record.lease_id is not None
    expires = int(record.deadline.timestamp()) + 1
    cid, dep, lease = record.id, record.deployment_id, record.lease_id
    params_ref = None
    if row.params_sha256 is not None:
        url = signed_url(
            signer,
            base_url,
            f"/v1/command-blobs/{cid}/params",
            Grant(UrlOp.PARAMS_GET, cid, dep, expires),
        )
        params_ref = BlobRef(url=url, size=row.params_size or 0, sha256=row.params_sha256)
    envelope = envelope_for(
        record,
        response_url=signed_url(
            signer,
            base_url,
            f"/v1/command-responses/{cid}",
            Grant(UrlOp.RESPOND, cid, dep, expires, extra=lease),
        ),
        params=None if params_ref is not None else (row.params or {}),
        params_ref=params_ref,
        traceparent=row.traceparent,
    )
    upload = signed_url(
        signer,
        base_url,
        f"/v1/command-blobs/{cid}/result",
        Grant(UrlOp.RESULT_PUT, cid, dep, expires, extra=lease),
    )
    return CommandOffer(envelope=envelope, target=row.target, result_upload_url=upload)
