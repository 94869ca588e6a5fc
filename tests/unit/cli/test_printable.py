"""Text another party chose reaches a reader's terminal inert: a debug reason the vendor typed
is shown to the customer's admin in ``alien-deploy pending`` just before they approve, so it must
not be able to add a row of its own, recolour, hide or rewrite what the admin reads."""

from __future__ import annotations

from datetime import datetime

import pytest

from alien.cli import approvals_view, audit
from alien.cli.output import cells, printable
from alien.client.approvals import ApprovalInfo
from alien.debug.api import AuditActor, AuditRecord

FORGED = "INC-1\nSUBJECT  KIND  approved by security \x1b[32mOK\x1b[0m \u202eevil [red]x[/red]"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain words: ok", "plain words: ok"),
        ("a\nb\rc\td", "a\\nb\\rc\\td"),
        ("\x1b[2J\x07\x00\x7f\x9b", "\\x1b[2J\\x07\\x00\\x7f\\x9b"),
        ("abc\u202edef\u2066\u200f", "abc\\u202edef\\u2066\\u200f"),
        ("naïve — ünïcode ✓", "naïve — ünïcode ✓"),
    ],
)
def test_control_and_bidi_characters_are_shown_escaped(text: str, shown: str) -> None:
    assert printable(text) == shown


def test_cells_are_never_read_as_markup() -> None:
    [cell] = cells(["[red]x[/red] [link=http://evil]y[/link]"])
    assert cell.plain == "[red]x[/red] [link=http://evil]y[/link]" and not cell.spans


def test_a_forged_reason_is_one_inert_row(capsys: pytest.CaptureFixture[str]) -> None:
    approval = ApprovalInfo(
        subject_id="dbg_01m87w528cbf8gwd0phxnbt51r",
        kind="debug_session",
        deployment_id="dep_01m87w528cbf8gwd0phxnbt51r",
        requested_by="key_0123456789abcdef",
        summary=FORGED,
        state="pending",
        required=["customer"],
        waiting_for=["customer"],
        created_at=datetime(2024, 1, 1, 12),
    )
    record = AuditRecord(
        seq=7,
        time=datetime(2024, 1, 1, 12),
        actor=AuditActor(kind="api_key", id="key_0123456789abcdef"),
        action="debug.session.request",
        outcome="success",
        target=approval.subject_id,
        details={"reason": FORGED},
    )
    approvals_view.pending_table([approval, approval.model_copy(update={"summary": "second"})])
    audit.records_table([record])
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\u202e" not in out
    lines = out.splitlines()
    assert len(lines) == 5, out  # two headers, two approvals, one record: nothing forged
    assert "[red]x[/red]" in lines[1] and "\\x1b[32mOK" in lines[1]
