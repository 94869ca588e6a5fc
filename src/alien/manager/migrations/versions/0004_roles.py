"""Roles scoped to deployment groups: which groups an API key is confined to.

``api_keys.group_scoped`` says whether the key is confined at all; ``api_key_groups`` lists the
groups. The flag is separate from the rows on purpose: deleting a group removes its rows
(``CASCADE``), and a scoped key whose last group disappears must then see *nothing*, never
silently become unscoped.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "api_keys",
        sa.Column("group_scoped", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "api_key_groups",
        sa.Column(
            "api_key_id",
            sa.String(40),
            sa.ForeignKey("api_keys.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "group_id",
            sa.String(40),
            sa.ForeignKey("groups.id", ondelete="CASCADE"),
            primary_key=True,
            index=True,
        ),
    )


def downgrade() -> None:
    op.drop_table("api_key_groups")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("group_scoped")
