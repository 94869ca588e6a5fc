"""The customer's side of access governance: what ``alien-deploy policy|approve|deny|pending|
audit`` ask the manager, always with the deployment's OWN token — never the vendor's.

Approvals go through :mod:`alien.client.approvals` (the vendor's CLI asks the same routes).
The credentials come from the agent's state directory (``agent.json`` for the manager URL,
``token`` for the deployment token), or, for a push-model deployment that has no agent, from
``--manager`` and ``ALIEN_DEPLOYMENT_TOKEN``. Each route is described once as a
:class:`~alien.client.calls.Call`; the CLI executes and renders them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from alien.agent.state import StateDir
from alien.client.calls import Call
from alien.client.config import ClientConfig, check_manager_url
from alien.errors import ValidationError

TOKEN_ENV = "ALIEN_DEPLOYMENT_TOKEN"
POLICY_PATH = "/v1/customer/policy"
AUDIT_PATH = "/v1/customer/audit"


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


# --- calls -------------------------------------------------------------------------------------


def _json(data: Any) -> dict[str, Any]:
    return dict(data)


def get_policy() -> Call[dict[str, Any]]:
    return Call("GET", POLICY_PATH, _json)


def set_policy(changes: Mapping[str, Any]) -> Call[dict[str, Any]]:
    """Only the fields in ``changes`` change (``None`` clears a limit)."""
    return Call("PATCH", POLICY_PATH, _json, json=dict(changes))
