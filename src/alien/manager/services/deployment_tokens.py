"""A deployment's own token (``ax_dep_…``): how the customer's side speaks for a deployment.

An agent gets it when it onboards; a push-model deployment (no agent) gets one for its customer,
once — at self-onboarding (``POST /v1/onboard/aws``), or issued by the vendor's admin
(``POST /v1/customer-credentials``) for a deployment the vendor registered. Only its hash is
stored; the value is shown once, in the answer that issued it. A deployment torn down (its agent
reported ``deleted``) loses its tokens: nothing should speak for it any more.
"""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from alien.manager import tokens
from alien.manager.auth import Principal
from alien.manager.db import utcnow
from alien.manager.ids import new_id
from alien.manager.models import DeploymentToken
from alien.manager.services import audit
from alien.manager.tokens import TokenKind
from alien.protocol.audit import Outcome


def issue_for_customer(
    session: Session, log: audit.AuditLog, caller: Principal, deployment_id: str
) -> str:
    """A new token for a push-model deployment's customer, audited
    (``deployment.credentials.issue``, its target the token's id); its value (never stored)."""
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
    session.flush()
    log.record(
        session,
        audit.AuditEntry(
            actor=audit.actor_of(caller),
            action="deployment.credentials.issue",
            outcome=Outcome.SUCCEEDED,
            deployment=deployment_id,
            target=token_id,
        ),
    )
    return issued.value


def revoke_tokens(session: Session, deployment_id: str) -> None:
    """Every token of the deployment stops working from the next request (the row cache sees
    the update)."""
    session.execute(
        update(DeploymentToken)
        .where(DeploymentToken.deployment_id == deployment_id, DeploymentToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
