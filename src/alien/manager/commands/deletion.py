"""A deleted deployment's commands and payloads go with it, in the command writer.

Why in the writer: the writer keeps the committed snapshots of live commands in memory
(:class:`~.records.LiveCommands`) and trusts that nothing else changes command rows. A
deployment deleted in a transaction of its own took its commands by foreign-key cascade behind
the cache's back, so their signed URLs went on working until the command's deadline: a response
was accepted and audited for a command that no longer existed, and a result upload placed its
file, then failed its row's foreign key, leaving the file for ever.

Why the payload files here: their ``command_payloads`` rows go by cascade too, and retention
deletes a file only when it deletes a row naming it — a deleted deployment's uploads would stay
on disk for good.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from alien.manager.blobs import BlobStore
from alien.manager.commands.records import CommandStore
from alien.manager.commands.retention import remove_payloads, send_the_batch
from alien.manager.models import CommandPayload


def forget_commands(session: Session, blobs: BlobStore, deployment_id: str) -> None:
    """Before the deployment's row is deleted in ``session`` (a writer operation's): delete its
    payload rows and the files no other row names, and have the batch's store — then the live
    cache — forget its commands, whose rows the delete takes by cascade."""
    send_the_batch(session)  # this batch's commands and uploads of the deployment go too
    payloads = select(CommandPayload.id, CommandPayload.sha256).where(
        CommandPayload.deployment_id == deployment_id
    )
    remove_payloads(session, blobs, session.execute(payloads).all())
    CommandStore.of(session).forget(deployment_id)
