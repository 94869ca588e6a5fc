"""``alien approvals ls``, ``alien audit ls`` (and ``alien-deploy``'s listings of the same): an
id is shown whole on one line, whatever the terminal's width, so it can be copied into the next
command (``alien approvals approve ID``); piped, no row is cut to 80 columns."""

from __future__ import annotations

import io
from datetime import datetime

import pytest
from rich.console import Console

from alien.cli import approvals_view, audit, deployments
from alien.client.approvals import ApprovalInfo
from alien.debug.api import AuditActor, AuditRecord

SUBJECT = "cmd_01m87w528cbf8gwd0phxnbt51r"
ACTOR = "key_0123456789abcdef"
SUMMARY = "run restart-the-database on acme/prod, with a summary long enough to need folding"


def _approval() -> ApprovalInfo:
    return ApprovalInfo(
        subject_id=SUBJECT,
        kind="command",
        deployment_id="dep_01m87w528cbf8gwd0phxnbt51r",
        requested_by=ACTOR,
        summary=SUMMARY,
        state="pending",
        required=["customer", "vendor"],
        waiting_for=["customer", "vendor"],
        created_at=datetime(2024, 1, 1, 12),
    )


def _record() -> AuditRecord:
    return AuditRecord(
        seq=123456,
        time=datetime(2024, 1, 1, 12),
        actor=AuditActor(kind="api_key", id=ACTOR),
        action="command.approval.requested",
        outcome="success",
        target=SUBJECT,
        details={"state": "pending", "reason": SUMMARY},
    )


def _lines(output: str) -> list[str]:
    return [line.rstrip() for line in output.splitlines()]


def _words(output: str) -> set[str]:
    return {word for line in output.splitlines() for word in line.split()}


@pytest.mark.parametrize("width", [60, 80, 120])
def test_ids_stay_whole_at_any_terminal_width(monkeypatch: pytest.MonkeyPatch, width: int) -> None:
    screen = io.StringIO()
    terminal = Console(file=screen, width=width, force_terminal=True, color_system=None)
    monkeypatch.setattr(deployments, "console", terminal)
    approvals_view.pending_table([_approval(), _approval()])
    audit.records_table([_record()])
    words = _words(screen.getvalue())
    assert {SUBJECT, ACTOR, "123456"} <= words, screen.getvalue()


def test_piped_tables_are_not_cut_to_80_columns(capsys: pytest.CaptureFixture[str]) -> None:
    """No terminal: rich would assume 80 columns and fold the summary and details too."""
    approvals_view.pending_table([_approval()])
    audit.records_table([_record()])
    approvals, records = _lines(capsys.readouterr().out)[1::2]
    assert approvals.startswith(SUBJECT) and approvals.endswith(SUMMARY)
    assert SUBJECT in records and records.endswith(f"state=pending reason={SUMMARY}"[:100])
