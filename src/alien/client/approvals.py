"""Approvals, as both sides decide them: what ``GET|POST /v1/approvals…`` ask and answer.

The customer calls them with the deployment's own token (``alien-deploy pending|approve|deny``),
a vendor approver with an API key (``alien approvals ls|approve|deny``); the manager decides who
may see and decide what. Each route is described once as a :class:`~alien.client.calls.Call`.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from alien.client.call import path_segment
from alien.client.calls import Call, decode_model, decode_page


class ApprovalInfo(BaseModel):
    """One approval as the manager shows it (``GET /v1/approvals``)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    subject_id: str
    kind: str
    deployment_id: str
    requested_by: str
    summary: str
    state: str
    required: list[str]
    waiting_for: list[str]
    customer_decision: str | None = None
    vendor_decision: str | None = None
    grant_seconds: int | None = None
    created_at: datetime


def list_approvals(
    state: str = "pending", deployment: str | None = None
) -> Call[list[ApprovalInfo]]:
    """Those in ``state``, oldest first."""
    params = {k: v for k, v in {"state": state, "deployment": deployment}.items() if v}
    return Call("GET", "/v1/approvals", decode_page(ApprovalInfo), params=params)


def _approval_path(subject_id: str, suffix: str) -> str:
    return f"/v1/approvals/{path_segment(subject_id, 'subject')}{suffix}"


def approve(
    subject_id: str, grant_seconds: int | None = None, note: str | None = None
) -> Call[ApprovalInfo]:
    body = {k: v for k, v in {"grant_seconds": grant_seconds, "note": note}.items() if v}
    return Call(
        "POST", _approval_path(subject_id, "/approve"), decode_model(ApprovalInfo), json=body
    )


def deny(subject_id: str, note: str | None = None) -> Call[ApprovalInfo]:
    body = {"note": note} if note else {}
    return Call("POST", _approval_path(subject_id, "/deny"), decode_model(ApprovalInfo), json=body)
