"""Drop indexes no query needs: every insert and state change paid a B-tree page for each.

``ix_commands_deployment_id`` is the leading column of ``ix_commands_deployment_state`` (and of
the idempotency constraint), which serve every deployment-scoped query; ``ix_commands_state``
changed with every state transition while only a list without a deployment filters on state
alone (it pages by id, newest first, and finds its page without it); nothing filters or orders
the audit trail by ``time`` (it is read in ``seq`` order).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_DROPPED = (
    ("ix_commands_deployment_id", "commands", ["deployment_id"]),
    ("ix_commands_state", "commands", ["state"]),
    ("ix_audit_records_time", "audit_records", ["time"]),
)


def upgrade() -> None:
    for name, table, _columns in _DROPPED:
        op.drop_index(name, table_name=table)


def downgrade() -> None:
    for name, table, columns in _DROPPED:
        op.create_index(name, table, columns)
