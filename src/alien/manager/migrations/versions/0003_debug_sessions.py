"""Remote debugging: AWS deployment configs, debug policies, debug sessions, the sealed audit
trail.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from alien.manager.db import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _deployment_key(ondelete: str, **options: bool) -> sa.Column:
    return sa.Column(
        "deployment_id",
        sa.String(40),
        sa.ForeignKey("deployments.id", ondelete=ondelete),
        **options,
    )


def upgrade() -> None:
    op.create_table(
        "aws_deployment_configs",
        _deployment_key("CASCADE", primary_key=True),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("role_arn", sa.String(2048), nullable=False),
        sa.Column("external_id", sa.String(1224), nullable=True),
        sa.Column("endpoint_url", sa.String(2048), nullable=True),
        sa.Column("allowed_services", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "debug_policies",
        _deployment_key("CASCADE", primary_key=True),
        sa.Column("mode", sa.String(32), nullable=False),
        sa.Column("max_ttl_seconds", sa.Integer(), nullable=False),
        sa.Column("allowed_channels", sa.JSON(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(40), nullable=True),
    )
    op.create_table(
        "debug_sessions",
        sa.Column("id", sa.String(40), primary_key=True),
        _deployment_key("SET NULL", nullable=True, index=True),
        sa.Column("deployment_ref", sa.String(200), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(40), nullable=False, index=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("state", sa.String(32), nullable=False, index=True),
        sa.Column("ttl_seconds", sa.Integer(), nullable=False),
        sa.Column("lookup", sa.String(16), nullable=False, unique=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False, index=True),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("ended_by", sa.String(40), nullable=True),
        sa.Column("end_reason", sa.Text(), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("request_count", sa.Integer(), nullable=False),
        sa.Column("bytes_in", sa.BigInteger(), nullable=False),
        sa.Column("bytes_out", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "audit_records",
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("time", UTCDateTime(), nullable=False, index=True),
        sa.Column("actor", sa.String(128), nullable=False, index=True),
        sa.Column("action", sa.String(128), nullable=False, index=True),
        sa.Column("deployment", sa.String(128), nullable=True, index=True),
        sa.Column("target", sa.String(512), nullable=True, index=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("record", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    for table in ("audit_records", "debug_sessions", "debug_policies", "aws_deployment_configs"):
        op.drop_table(table)
