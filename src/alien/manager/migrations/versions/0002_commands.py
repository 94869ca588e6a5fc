"""Remote commands: the commands and their large payloads.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from alien.manager.db import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "commands",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column(
            "deployment_id",
            sa.String(40),
            sa.ForeignKey("deployments.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("command", sa.String(128), nullable=False),
        sa.Column("target", sa.String(63), nullable=False),
        sa.Column("state", sa.String(16), nullable=False, index=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("deadline", UTCDateTime(), nullable=False),
        sa.Column("lease_id", sa.String(72), nullable=True),
        sa.Column("lease_expires_at", UTCDateTime(), nullable=True),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("wakeup_at", UTCDateTime(), nullable=True, index=True),
        sa.Column("params", sa.JSON(), nullable=True),
        sa.Column("params_sha256", sa.String(64), nullable=True),
        sa.Column("params_size", sa.BigInteger(), nullable=True),
        sa.Column("response", sa.JSON(), nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("request_digest", sa.String(64), nullable=True),
        sa.Column("traceparent", sa.String(55), nullable=True),
        sa.Column("created_by", sa.String(40), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("deployment_id", "idempotency_key", name="uq_commands_idempotency"),
    )
    op.create_index("ix_commands_deployment_state", "commands", ["deployment_id", "state"])
    op.create_table(
        "command_payloads",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column(
            "deployment_id",
            sa.String(40),
            sa.ForeignKey("deployments.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "command_id",
            sa.String(40),
            sa.ForeignKey("commands.id", ondelete="CASCADE"),
            nullable=True,
            index=True,
        ),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(40), nullable=True),
    )
    op.create_index("ix_command_payloads_lookup", "command_payloads", ["deployment_id", "sha256"])


def downgrade() -> None:
    op.drop_table("command_payloads")
    op.drop_table("commands")
