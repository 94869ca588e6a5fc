"""Initial schema: API keys, groups and their tokens, deployments and their tokens, releases.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from alien.manager.db import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("lookup", sa.String(16), nullable=False, unique=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(40), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
    )
    op.create_table(
        "groups",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(63), nullable=False, unique=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "group_tokens",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column(
            "group_id",
            sa.String(40),
            sa.ForeignKey("groups.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("lookup", sa.String(16), nullable=False, unique=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(40), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("last_used_at", UTCDateTime(), nullable=True),
        sa.Column("use_count", sa.Integer(), nullable=False, server_default="0"),
    )
    op.create_table(
        "releases",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("stack_name", sa.String(200), nullable=False),
        sa.Column("manifest", sa.Text(), nullable=False),
        sa.Column("manifest_digest", sa.String(80), nullable=False),
        sa.Column("package_digest", sa.String(80), nullable=False),
        sa.Column("package_size", sa.BigInteger(), nullable=False),
        sa.Column("targets", sa.JSON(), nullable=False),
        sa.Column("target_type", sa.String(16), nullable=False),
        sa.Column(
            "target_group_id",
            sa.String(40),
            sa.ForeignKey("groups.id", ondelete="SET NULL"),
            nullable=True,
            index=True,
        ),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False, index=True),
        sa.Column("created_by", sa.String(40), nullable=True),
    )
    op.create_table(
        "deployments",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column(
            "group_id",
            sa.String(40),
            sa.ForeignKey("groups.id", ondelete="RESTRICT"),
            nullable=False,
            index=True,
        ),
        sa.Column("name", sa.String(63), nullable=False, index=True),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("provisioned", sa.Boolean(), nullable=False),
        sa.Column(
            "desired_release_id",
            sa.String(40),
            sa.ForeignKey("releases.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column(
            "current_release_id",
            sa.String(40),
            sa.ForeignKey("releases.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column(
            "last_good_release_id",
            sa.String(40),
            sa.ForeignKey("releases.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column(
            "target_release_id",
            sa.String(40),
            sa.ForeignKey("releases.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column(
            "failed_release_id",
            sa.String(40),
            sa.ForeignKey("releases.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("last_heartbeat_at", UTCDateTime(), nullable=True),
        sa.Column("status_detail", sa.JSON(), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("agent_version", sa.String(64), nullable=True),
        sa.Column("onboarded_with", sa.String(40), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("group_id", "name", name="uq_deployments_group_name"),
    )
    op.create_table(
        "deployment_tokens",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column(
            "deployment_id",
            sa.String(40),
            sa.ForeignKey("deployments.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("lookup", sa.String(16), nullable=False, unique=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
    )
    op.create_table(
        "release_targets",
        sa.Column(
            "release_id",
            sa.String(40),
            sa.ForeignKey("releases.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "deployment_id",
            sa.String(40),
            sa.ForeignKey("deployments.id", ondelete="CASCADE"),
            primary_key=True,
            index=True,
        ),
        sa.Column("assigned_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    for table in (
        "release_targets",
        "deployment_tokens",
        "deployments",
        "releases",
        "group_tokens",
        "groups",
        "api_keys",
    ):
        op.drop_table(table)
