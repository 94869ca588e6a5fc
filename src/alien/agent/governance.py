"""The customer's side of access governance: what ``alien-deploy policy|approve|deny|pending|
audit`` ask the manager, always with the deployment's OWN token — never the vendor's.

The credentials come from the agent's state directory (``agent.json`` for the manager URL,
``token`` for the deployment token), or, for a push-model deployment that has no agent, from
``--manager`` and ``ALIEN_DEPLOYMENT_TOKEN``. Each route is described once as a
:class:`~alien.client.calls.Call`; the CLI executes and renders them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict

from alien.agent.state import StateDir
from alien.client.calls import Call, decode_model, decode_page
from alien.client.config import ClientConfig, check_manager_url
from alien.errors import ValidationError

TOKEN_ENV = "ALIEN_DEPLOYMENT_TOKEN"
POLICY_PATH = "/v1/customer/policy"
AUDIT_PATH = "/v1/customer/audit"

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


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


def credentials(
    state_dir: StateDir,
    *,
    manager: str | None = None,
    env: Mapping[str, str] | None = None,
) -> ClientConfig:
    """The deployment's own credentials: ``ALIEN_DEPLOYMENT_TOKEN`` (+ ``--manager``) when set,
    else the onboarded state dir's token and manager URL."""
    env = os.environ if env is None else env
    token = env.get(TOKEN_ENV)
    if token:
        if not token.startswith("ax_dep_"):
            raise ValidationError(
                f"{TOKEN_ENV} is not a deployment token (ax_dep_…)", field=TOKEN_ENV
            )
        if not manager:
            raise ValidationError(
                f"with {TOKEN_ENV}, say which manager: --manager URL", field="manager"
            )
        return ClientConfig(base_url=check_manager_url(manager), token=token)
    state = state_dir.load()
    url = check_manager_url(manager) if manager else state.manager_url
    return ClientConfig(base_url=url, token=state_dir.read_token())


def parse_duration(text: str, *, field: str = "for") -> int:
    """``90``, ``90s``, ``30m``, ``2h``, ``1d`` → seconds."""
    match = _DURATION.fullmatch(text)
    seconds = int(match[1]) * _UNIT_SECONDS[match[2]] if match else 0
    if seconds <= 0:
        raise ValidationError(f"{text!r} is not a duration (like 90s, 30m, 2h)", field=field)
    return seconds


# --- calls -------------------------------------------------------------------------------------


def _json(data: Any) -> dict[str, Any]:
    return dict(data)


def get_policy() -> Call[dict[str, Any]]:
    return Call("GET", POLICY_PATH, _json)


def set_policy(changes: Mapping[str, Any]) -> Call[dict[str, Any]]:
    """Only the fields in ``changes`` change (``None`` clears a limit)."""
    return Call("PATCH", POLICY_PATH, _json, json=dict(changes))


def list_approvals(state: str | None = "pending") -> Call[list[ApprovalInfo]]:
    params = {"state": state} if state else {}
    return Call("GET", "/v1/approvals", decode_page(ApprovalInfo), params=params)


def _approval_path(subject_id: str, suffix: str) -> str:
    return f"/v1/approvals/{quote(subject_id, safe='')}{suffix}"


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
