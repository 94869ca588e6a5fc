"""Building and tampering with audit chains, shared by the audit tests.

Records are tampered with in their stored form (dicts from ``to_dict``), the way someone with
write access to the database would: edit a column, delete or reorder rows, recompute a hash.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from alien.protocol.audit import (
    GENESIS_HASH,
    Actor,
    AuditDraft,
    AuditRecord,
    Signer,
    parse_record,
    seal,
    signing_payload,
)

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)

# Fixed seeds: Ed25519 signing is deterministic, so records (and golden hashes) are reproducible.
MANAGER = Signer.from_raw(bytes(range(32)))
ATTACKER = Signer.from_raw(bytes(range(100, 132)))


def draft(
    n: int = 0,
    *,
    deployment_id: str | None = None,
    action: str = "command.invoke",
    details: dict[str, Any] | None = None,
) -> AuditDraft:
    return AuditDraft(
        time=T0 + timedelta(seconds=n),
        actor=Actor(kind="api_key", id="key_0123456789abcdef", role="operator"),
        action=action,
        outcome="succeeded",
        deployment_id=deployment_id,
        group_id="grp_main" if deployment_id else None,
        target=f"cmd_{n:04d}",
        details={"n": n} if details is None else details,
    )


def build_chain(
    drafts: Sequence[AuditDraft], signer: Signer = MANAGER, prev: AuditRecord | None = None
) -> list[AuditRecord]:
    """Seal drafts in order the way the manager must: each after the latest record overall and
    the latest of its own deployment."""
    records: list[AuditRecord] = []
    latest: dict[str, AuditRecord] = {}
    for item in drafts:
        record = seal(prev, item, signer, deployment_prev=latest.get(item.deployment_id or ""))
        if item.deployment_id:
            latest[item.deployment_id] = record
        records.append(record)
        prev = record
    return records


def chain_of(deployments: Sequence[str | None], signer: Signer = MANAGER) -> list[AuditRecord]:
    """A chain whose n-th record belongs to ``deployments[n]``."""
    return build_chain([draft(n, deployment_id=dep) for n, dep in enumerate(deployments)], signer)


def rows(records: Sequence[AuditRecord]) -> list[dict[str, Any]]:
    return [record.to_dict() for record in records]


def rehash(row: dict[str, Any]) -> dict[str, Any]:
    """Recompute a row's hash after an edit, as an attacker without the key can."""
    row = copy.deepcopy(row)
    row["hash"] = parse_record(row).digest()
    return row


def resign(row: dict[str, Any], signer: Signer, *, claim: str | None = None) -> dict[str, Any]:
    """Re-hash and sign a row with another key, as an attacker with their own key can;
    ``claim`` is the key id written into the row (the signer's own by default)."""
    row = copy.deepcopy(row)
    row["key_id"] = claim or signer.key_id
    row = rehash(row)
    row["signature"] = signer.sign(signing_payload(row["hash"])).hex()
    return row


def relink(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Re-link and re-hash every row (global and deployment chains), as an attacker without the
    key can after editing one: every link holds again, only signatures can tell."""
    out: list[dict[str, Any]] = []
    latest: dict[str, str] = {}
    for row in rows:
        row = dict(row, prev_hash=out[-1]["hash"] if out else GENESIS_HASH)
        deployment = row["deployment_id"]
        if deployment:
            row["deployment_prev_hash"] = latest.get(deployment, GENESIS_HASH)
        row = rehash(row)
        if deployment:
            latest[deployment] = row["hash"]
        out.append(row)
    return out


def edit(row: dict[str, Any], what: str) -> dict[str, Any]:
    """A copy of ``row`` with one field changed to a different, still valid, value."""
    row = copy.deepcopy(row)
    if what == "details":
        row["details"] = {**row["details"], "tampered": True}
    elif what == "outcome":
        row["outcome"] = "failed" if row["outcome"] != "failed" else "succeeded"
    elif what == "action":
        row["action"] = row["action"] + ".x"
    elif what == "actor":
        row["actor"] = {**row["actor"], "id": row["actor"]["id"] + "x"}
    elif what == "time":
        row["time"] = (parse_record(row).time + timedelta(microseconds=1)).isoformat()
    elif what == "target":
        row["target"] = "forged"
    elif what == "seq":
        row["seq"] = row["seq"] + 1000
    else:
        raise AssertionError(what)
    return row


EDITABLE = ("details", "outcome", "action", "actor", "time", "target", "seq")
