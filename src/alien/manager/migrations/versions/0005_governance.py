"""Access governance: the customer's policy per deployment and approvals of debug sessions and
commands.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from alien.manager.db import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "customer_policies",
        sa.Column(
            "deployment_id",
            sa.String(40),
            sa.ForeignKey("deployments.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("access", sa.Boolean(), nullable=False),
        sa.Column("debug_mode", sa.String(16), nullable=False),
        sa.Column("max_ttl_seconds", sa.Integer(), nullable=True),
        sa.Column("channels", sa.JSON(), nullable=True),
        sa.Column("egress_allow", sa.JSON(), nullable=True),
        sa.Column("commands", sa.JSON(), nullable=True),
        sa.Column("command_approval", sa.Boolean(), nullable=False),
        sa.Column(
            "held_release_id",
            sa.String(40),
            sa.ForeignKey("releases.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(40), nullable=True),
    )
    op.create_table(
        "approvals",
        sa.Column("subject_id", sa.String(40), primary_key=True),
        sa.Column("subject_kind", sa.String(16), nullable=False),
        sa.Column(
            "deployment_id",
            sa.String(40),
            sa.ForeignKey("deployments.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("requested_by", sa.String(40), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False, index=True),
        sa.Column("need_customer", sa.Boolean(), nullable=False),
        sa.Column("need_vendor", sa.Boolean(), nullable=False),
        sa.Column("customer_decision", sa.String(16), nullable=True),
        sa.Column("customer_by", sa.String(40), nullable=True),
        sa.Column("vendor_decision", sa.String(16), nullable=True),
        sa.Column("vendor_by", sa.String(40), nullable=True),
        sa.Column("grant_seconds", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("approvals")
    op.drop_table("customer_policies")
