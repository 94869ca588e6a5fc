"""The lease each large command result was uploaded under.

A result upload URL named its command but not the delivery's lease, so an attempt whose lease
had run out (the command handed to another attempt) could still upload, and the current
attempt's response could name that upload. ``command_payloads.lease_id`` records the lease of
each result upload; a response's ``result_ref`` must name one made under its own lease.

Results uploaded before this revision are given their command's lease as it is now: the lease
that answered an ended command, the current one of a command still running — which is how they
were taken until now (any upload of the command went), so an answer in flight across the
upgrade still finds its result. Params rows keep NULL: they belong to a deployment, not a lease.
Downgrading drops the column and with it the binding.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("command_payloads", sa.Column("lease_id", sa.String(72), nullable=True))
    op.execute(
        "UPDATE command_payloads SET lease_id = ("
        "SELECT commands.lease_id FROM commands WHERE commands.id = command_payloads.command_id"
        ") WHERE kind = 'result'"
    )


def downgrade() -> None:
    with op.batch_alter_table("command_payloads") as batch:
        batch.drop_column("lease_id")
