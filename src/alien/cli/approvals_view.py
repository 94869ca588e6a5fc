"""How approvals are shown, by ``alien approvals`` (vendor) and ``alien-deploy`` (customer)."""

from __future__ import annotations

from alien.cli.deployments import print_rows
from alien.cli.output import console
from alien.client.approvals import ApprovalInfo

_ID_COLUMNS = ("SUBJECT", "REQUESTED BY")
"""Whole on one line, always: ``alien approvals approve SUBJECT`` needs the id copied as shown."""


def approval_line(info: ApprovalInfo) -> str:
    """One line after a decision: the outcome, or who still has to decide."""
    if info.state == "pending":
        return f"{info.subject_id}: your decision is recorded; still waiting for the " + (
            " and ".join(info.waiting_for)
        )
    grant = f" for {info.grant_seconds}s" if info.grant_seconds else ""
    return f"{info.subject_id}: {info.state}{grant if info.state == 'approved' else ''}"


def pending_table(items: list[ApprovalInfo]) -> None:
    if not items:
        console.print("nothing waits for approval", highlight=False)
        return
    rows = [
        (
            a.subject_id,
            a.kind,
            a.state,
            a.requested_by,
            ", ".join(a.waiting_for) or "-",
            f"{a.created_at:%Y-%m-%d %H:%M:%S}",
            a.summary,
        )
        for a in items
    ]
    headers = ("SUBJECT", "KIND", "STATE", "REQUESTED BY", "WAITING FOR", "SINCE", "WHAT")
    print_rows(headers, rows, _ID_COLUMNS)
