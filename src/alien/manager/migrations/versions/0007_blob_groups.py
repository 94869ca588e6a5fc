"""Which deployment groups uploaded each package blob, so a group-scoped key sees only its own.

The blob store is content-addressed and shared, so a key scoped to groups could read (and
release) another group's package by learning its digest. ``blob_groups`` records the groups of
each scoped key that uploaded a blob; a scoped key sees a blob only through a row of one of its
groups. Unscoped uploads add no row: unscoped keys see every blob anyway.

Blobs stored before this revision have no rows, so they become visible to unscoped keys only; a
scoped key that needs one uploads the same bytes again (cheap: the content is already stored),
which records its groups. Downgrading drops the table and with it the separation.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blob_groups",
        sa.Column("digest", sa.String(80), primary_key=True),
        sa.Column(
            "group_id",
            sa.String(40),
            sa.ForeignKey("groups.id", ondelete="CASCADE"),
            primary_key=True,
        ),
    )


def downgrade() -> None:
    op.drop_table("blob_groups")
