"""A deployment's own token (``ax_dep_…``): how the customer's side speaks for a deployment.

An agent gets it when it onboards; a push-model deployment (no agent) gets one for its customer,
once — at self-onboarding (``POST /v1/onboard/aws``), or issued by the vendor's admin
(``POST /v1/customer-credentials``) for a deployment the vendor registered. Only its hash is
stored; the value is shown once, in the answer that issued it.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from alien.manager import tokens
from alien.manager.db import utcnow
from alien.manager.ids import new_id
from alien.manager.models import DeploymentToken
from alien.manager.tokens import TokenKind


def issue(session: Session, deployment_id: str) -> tuple[str, str]:
    """A new token for the deployment: its id and its value (never stored)."""
    issued = tokens.issue(TokenKind.DEPLOYMENT)
    token_id = new_id("dtk")
    session.add(
        DeploymentToken(
            id=token_id,
            deployment_id=deployment_id,
            lookup=issued.lookup,
            token_hash=issued.hash,
            created_at=utcnow(),
        )
    )
    return token_id, issued.value
