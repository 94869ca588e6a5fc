"""Who is calling (authentication) and what they may do (authorisation).

Every route declares ONE :class:`Action` through ONE FastAPI dependency
(:func:`alien.manager.api.deps.require`), which resolves the caller with :func:`resolve` and asks
:func:`authorize` — the one place where permissions are decided. Routes that act on one resource
call :func:`authorize` once more with that resource's scope (its deployments, groups, sessions).
Deny by default: an action no table below grants is refused, and a test walks the app's routes
to prove each one declares its action (``tests/governance/test_authz_matrix.py``).

Four principals, one per token kind (see :mod:`alien.manager.tokens`):

* **API key** — a vendor user; what it may do comes from its role (``ROLE_ACTIONS``): ``admin``
  (everything), ``operator`` (releases, commands, groups and their tokens), ``debugger`` (debug
  sessions), ``viewer`` (read-only). A key may be **scoped to deployment groups**: it then sees
  and acts only on the deployments of those groups and on the releases, commands and debug
  sessions that belong to them; lists are filtered, and anything of another group answers
  404 exactly as if it did not exist (so a scoped key cannot learn what other groups hold).
  Actions that reach beyond any group (``UNSCOPED_ONLY``: managing keys, creating or changing
  groups, the global audit trail) are refused to a scoped key with 403.
* **group token** — may onboard a deployment into its group, and nothing else.
* **deployment token** — the agent; may act only on its own deployment (and read/download the
  releases assigned to it).
* **debug-session token** — one debug session's tunnel and its own read/close routes, and only
  while that session is live (an ended or expired session's token is as good as revoked).

Failures: no token, a token that is not ours, unknown, or revoked → 401 ``UNAUTHENTICATED`` (the
message never says which, so it is no oracle); a valid token without the permission → 403; a
scoped key asking about something outside its groups → 404, and so does a deployment token
asking about another deployment or its resources (its deployment references resolve to its own
deployment only: :func:`alien.manager.services.deployments.visible_deployment`), and a
debug-session token asking about another session.

Two kinds of route carry no token: :data:`PUBLIC_ACTIONS` (health, the audit trail's public key)
and :data:`SIGNED_URL_ACTIONS` (command payload URLs, where the URL's signature is the authority;
see :mod:`alien.manager.commands.signing`).
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from alien.errors import AlienError, Forbidden, NotFound, Unauthenticated
from alien.manager import tokens
from alien.manager.db import utcnow
from alien.manager.models import (
    ApiKey,
    ApiKeyGroup,
    DebugSession,
    Deployment,
    DeploymentToken,
    GroupToken,
)
from alien.manager.row_cache import CacheKind, cached
from alien.manager.tokens import TokenKind
from alien.redaction import add_secret


class Role(enum.StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    DEBUGGER = "debugger"
    VIEWER = "viewer"


class Action(enum.StrEnum):
    HEALTH = "health"
    KEYS_MANAGE = "keys:manage"
    GROUPS_READ = "groups:read"
    GROUPS_WRITE = "groups:write"
    GROUP_TOKENS_READ = "group_tokens:read"
    GROUP_TOKENS_WRITE = "group_tokens:write"
    DEPLOYMENTS_LIST = "deployments:list"
    DEPLOYMENT_READ = "deployment:read"
    DEPLOYMENT_DELETE = "deployment:delete"
    RELEASES_LIST = "releases:list"
    RELEASE_READ = "release:read"
    RELEASE_CREATE = "release:create"
    RELEASE_DOWNLOAD = "release:download"
    ONBOARD = "onboard"
    AGENT = "agent"
    COMMANDS_READ = "commands:read"
    COMMANDS_INVOKE = "commands:invoke"
    COMMANDS_CANCEL = "commands:cancel"
    COMMAND_PARAMS_FETCH = "command_params:fetch"
    COMMAND_RESULT_STORE = "command_result:store"
    COMMAND_RESULT_FETCH = "command_result:fetch"
    COMMAND_RESPOND = "command:respond"
    DEPLOYMENTS_REGISTER = "deployments:register"
    DEBUG_POLICY_READ = "debug_policy:read"
    DEBUG_POLICY_WRITE = "debug_policy:write"
    DEBUG_OPEN = "debug:open"
    DEBUG_SESSIONS_LIST = "debug_sessions:list"
    DEBUG_SESSION_READ = "debug_session:read"
    DEBUG_SESSION_CLOSE = "debug_session:close"
    DEBUG_SESSION_REVOKE = "debug_session:revoke"
    DEBUG_TUNNEL = "debug:tunnel"
    AUDIT_READ = "audit:read"
    # Access governance (customer policy, approvals, the customer's audit view).
    AUDIT_PUBLIC_KEY = "audit:public_key"
    CUSTOMER_POLICY_READ = "customer_policy:read"
    CUSTOMER_POLICY_WRITE = "customer_policy:write"
    CUSTOMER_AUDIT_READ = "customer_audit:read"
    CUSTOMER_CREDENTIALS_ISSUE = "customer_credentials:issue"
    APPROVALS_READ = "approvals:read"
    APPROVALS_DECIDE = "approvals:decide"


#: Actions anyone may take, without a token (load balancers probe health).
PUBLIC_ACTIONS = frozenset({Action.HEALTH, Action.AUDIT_PUBLIC_KEY})

#: Actions whose authority is a signed URL, not a token: whoever runs a command's handler
#: fetches its params, stores its result and posts its response through URLs the manager signed
#: for exactly that command, deployment (and lease) — see :mod:`alien.manager.commands.signing`.
SIGNED_URL_ACTIONS = frozenset(
    {
        Action.COMMAND_PARAMS_FETCH,
        Action.COMMAND_RESULT_STORE,
        Action.COMMAND_RESULT_FETCH,
        Action.COMMAND_RESPOND,
    }
)

_READ = {
    Action.GROUPS_READ,
    Action.DEPLOYMENTS_LIST,
    Action.DEPLOYMENT_READ,
    Action.RELEASES_LIST,
    Action.RELEASE_READ,
    Action.COMMANDS_READ,
}
_OPERATE = _READ | {
    Action.GROUPS_WRITE,
    Action.GROUP_TOKENS_READ,
    Action.GROUP_TOKENS_WRITE,
    Action.DEPLOYMENT_DELETE,
    Action.RELEASE_CREATE,
    Action.RELEASE_DOWNLOAD,
    Action.COMMANDS_INVOKE,
    Action.COMMANDS_CANCEL,
}

# Remote debugging: debuggers open (and close their own) sessions; admins also register AWS
# deployments, set debug policies and revoke sessions; operators may read sessions and the audit.
_DEBUG_READ = {Action.DEBUG_POLICY_READ, Action.DEBUG_SESSIONS_LIST, Action.DEBUG_SESSION_READ}
_DEBUG_USE = _DEBUG_READ | {Action.DEBUG_OPEN, Action.DEBUG_SESSION_CLOSE}
_DEBUG_ADMIN = _DEBUG_USE | {
    Action.DEPLOYMENTS_REGISTER,
    Action.DEBUG_POLICY_WRITE,
    Action.DEBUG_SESSION_REVOKE,
    Action.AUDIT_READ,
}

# Approvals: every vendor role sees what waits for approval; admins are the vendor's approvers
# (when the vendor's debug policy requires approval) and hand a push-model deployment's
# customer its credentials.
_GOVERN_ADMIN = {
    Action.APPROVALS_READ,
    Action.APPROVALS_DECIDE,
    Action.CUSTOMER_CREDENTIALS_ISSUE,
}

ROLE_ACTIONS: dict[Role, frozenset[Action]] = {
    Role.ADMIN: frozenset(_OPERATE | {Action.KEYS_MANAGE} | _DEBUG_ADMIN | _GOVERN_ADMIN),
    Role.OPERATOR: frozenset(_OPERATE | _DEBUG_READ | {Action.AUDIT_READ, Action.APPROVALS_READ}),
    Role.DEBUGGER: frozenset(_READ | _DEBUG_USE | {Action.APPROVALS_READ}),
    Role.VIEWER: frozenset(_READ | {Action.DEBUG_POLICY_READ, Action.APPROVALS_READ}),
}

#: What a key scoped to deployment groups may never do, whatever its role: each reaches beyond
#: any set of groups (a key manager could mint itself an unscoped key; group writes create,
#: rename and delete groups; the audit trail spans every group).
UNSCOPED_ONLY = frozenset({Action.KEYS_MANAGE, Action.GROUPS_WRITE, Action.AUDIT_READ})

GROUP_TOKEN_ACTIONS = frozenset({Action.ONBOARD})

#: What a deployment token may do, each only on deployments in the scope the route passes.
DEPLOYMENT_TOKEN_ACTIONS = frozenset(
    {
        Action.AGENT,
        Action.DEPLOYMENT_READ,
        Action.RELEASE_READ,
        Action.RELEASE_DOWNLOAD,
        # The customer governs their own deployment with its token (alien-deploy policy, …).
        Action.CUSTOMER_POLICY_READ,
        Action.CUSTOMER_POLICY_WRITE,
        Action.CUSTOMER_AUDIT_READ,
        Action.APPROVALS_READ,
        Action.APPROVALS_DECIDE,
        # ... and may leave: the manager forgets it (alien-deploy down --platform aws).
        Action.DEPLOYMENT_DELETE,
    }
)

#: What a debug-session token may do, each only on its own session (the scope routes pass).
DEBUG_SESSION_TOKEN_ACTIONS = frozenset(
    {Action.DEBUG_TUNNEL, Action.DEBUG_SESSION_READ, Action.DEBUG_SESSION_CLOSE}
)


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. ``id`` is the token row id (``key_…``, ``gtk_…``, ``dtk_…``), or
    for a debug-session token the session's id (``dbg_…``).

    ``groups`` is set for an API key scoped to deployment groups (the group ids; empty when every
    group it was scoped to has been deleted: it then sees nothing), ``None`` for an unscoped one.
    ``scope_deployments`` are the ids of the deployments in those groups when the token was
    resolved, so a check against a resource's deployment ids needs no further query.
    """

    kind: TokenKind
    id: str
    role: Role | None = None
    group_id: str | None = None
    deployment_id: str | None = None
    groups: frozenset[str] | None = None
    scope_deployments: frozenset[str] | None = None

    @property
    def label(self) -> str:
        """How the caller is recorded in ``created_by`` columns (never a secret)."""
        return self.id

    @property
    def scoped(self) -> bool:
        """Whether this is an API key confined to some deployment groups."""
        return self.groups is not None

    @property
    def sees_every_deployment(self) -> bool:
        """Whether this caller may know of every deployment (an unscoped API key)."""
        return self.kind is TokenKind.API_KEY and self.groups is None

    def sees_deployment(self, deployment_id: str) -> bool:
        """Whether this caller may know that the deployment exists: a scoped key those of its
        groups, a deployment token its own, no other token any (deny by default). What a view
        of something shared by several groups (a release) may name to this caller."""
        if self.sees_every_deployment:
            return True
        if self.kind is TokenKind.API_KEY:
            return deployment_id in (self.scope_deployments or ())
        return self.kind is TokenKind.DEPLOYMENT and deployment_id == self.deployment_id


def bearer_token(authorization: str | None) -> str | None:
    """The token from an ``Authorization: Bearer …`` header value, if any."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthenticated("expected 'Authorization: Bearer <token>'", field="authorization")
    return value.strip()


def resolve(session: Session, token: str | None) -> Principal | None:
    """The principal for a presented token; ``None`` when no token was presented.

    A token that authenticates is registered with the process redactor, so it is masked in
    whatever this process writes from now on (one issued before a restart included). Refused
    ones are not: anyone may send garbage, and the redactor must not grow with it (their shape
    is masked anyway).
    """
    if token is None:
        return None
    principal = _resolve(session, token)
    add_secret(token)
    return principal


PRINCIPALS = CacheKind(
    "principals",
    tables=("api_keys", "api_key_groups", "group_tokens", "deployment_tokens", "deployments"),
)
"""Who a token is, remembered while nothing it was read from changed (a revocation is a change:
the next request is refused). Debug-session tokens are not cached: they end with time."""


def _resolve(session: Session, token: str) -> Principal:
    parsed = tokens.parse(token)
    if parsed is None:
        raise _invalid()
    if parsed.kind is TokenKind.DEBUG_SESSION:
        return _debug_session_principal(session, parsed.lookup, token)
    key = tokens.hash_token(token)
    return cached(session, PRINCIPALS, key, lambda: _token_principal(session, parsed, token))


def _token_principal(session: Session, parsed: tokens.ParsedToken, token: str) -> Principal:
    if parsed.kind is TokenKind.API_KEY:
        key = session.scalar(select(ApiKey).where(ApiKey.lookup == parsed.lookup))
        if key is None or key.revoked_at is not None or not tokens.matches(token, key.token_hash):
            raise _invalid()
        return _key_principal(session, key)
    if parsed.kind is TokenKind.GROUP:
        gtok = session.scalar(select(GroupToken).where(GroupToken.lookup == parsed.lookup))
        if (
            gtok is None
            or gtok.revoked_at is not None
            or not tokens.matches(token, gtok.token_hash)
        ):
            raise _invalid()
        return Principal(kind=parsed.kind, id=gtok.id, group_id=gtok.group_id)
    dtok = session.scalar(select(DeploymentToken).where(DeploymentToken.lookup == parsed.lookup))
    if dtok is None or dtok.revoked_at is not None or not tokens.matches(token, dtok.token_hash):
        raise _invalid()
    return Principal(kind=parsed.kind, id=dtok.id, deployment_id=dtok.deployment_id)


def _key_principal(session: Session, key: ApiKey) -> Principal:
    role = Role(key.role)
    if not key.group_scoped:
        return Principal(kind=TokenKind.API_KEY, id=key.id, role=role)
    # Two indexed queries, only for scoped keys; an unscoped key costs nothing extra.
    groups = frozenset(
        session.scalars(select(ApiKeyGroup.group_id).where(ApiKeyGroup.api_key_id == key.id))
    )
    members = (
        frozenset(session.scalars(select(Deployment.id).where(Deployment.group_id.in_(groups))))
        if groups
        else frozenset()
    )
    return Principal(
        kind=TokenKind.API_KEY, id=key.id, role=role, groups=groups, scope_deployments=members
    )


#: Session states in which a debug-session token still authenticates.
LIVE_DEBUG_STATES = frozenset({"pending_approval", "active"})


def _debug_session_principal(session: Session, lookup: str, token: str) -> Principal:
    row = session.scalar(select(DebugSession).where(DebugSession.lookup == lookup))
    if row is None or not tokens.matches(token, row.token_hash):
        raise _invalid()
    expired = row.expires_at is not None and row.expires_at <= utcnow()
    if row.state not in LIVE_DEBUG_STATES or expired:
        raise Unauthenticated("this debug session has ended", field="authorization")
    return Principal(kind=TokenKind.DEBUG_SESSION, id=row.id, deployment_id=row.deployment_id)


def authorize(
    principal: Principal | None,
    action: Action,
    *,
    deployments: Collection[str] | None = None,
    groups: Collection[str] | None = None,
    sessions: Collection[str] | None = None,
    missing: AlienError | None = None,
) -> Principal:
    """Allow ``action`` or raise. Returns the principal so routes can write ``p = authorize(...)``.

    Without a scope this answers "could this caller ever do this?" — routes ask that before
    loading anything, so a stranger learns nothing about what exists. With one, it is a check on
    one resource: ``deployments`` and ``groups`` are the deployments/groups the resource belongs
    to (a deployment token and a scoped key must be in scope of at least one), ``sessions`` the
    debug sessions (a debug-session token must be one of them). ``missing`` is the error the
    route raises when the resource does not exist: a scoped key gets exactly that for a resource
    outside its groups, a deployment token for one that is not its deployment's and a
    debug-session token for another session, so the answer cannot tell "elsewhere" from
    "nowhere".

    A scoped key asked about a resource with only a ``sessions`` scope is refused: whatever has
    no deployment or group to check is out of every group's scope (deny by default).
    """
    if principal is None:
        raise Unauthenticated("this route needs 'Authorization: Bearer <token>'")
    if principal.kind is TokenKind.API_KEY:
        assert principal.role is not None
        if action in ROLE_ACTIONS[principal.role]:
            return _within_groups(principal, action, deployments, groups, sessions, missing)
    elif principal.kind is TokenKind.GROUP:
        if action in GROUP_TOKEN_ACTIONS:
            return principal
    elif principal.kind is TokenKind.DEBUG_SESSION:
        if action in DEBUG_SESSION_TOKEN_ACTIONS:
            if sessions is None or principal.id in sessions:
                return principal
            if missing is not None:
                raise missing
    elif action in DEPLOYMENT_TOKEN_ACTIONS:
        if deployments is None or principal.deployment_id in deployments:
            return principal
        if missing is not None:
            raise missing
    raise Forbidden(f"this token lacks the permission {action.value!r}")


def _within_groups(
    principal: Principal,
    action: Action,
    deployments: Collection[str] | None,
    groups: Collection[str] | None,
    sessions: Collection[str] | None,
    missing: AlienError | None,
) -> Principal:
    if principal.groups is None:
        return principal
    if action in UNSCOPED_ONLY:
        raise Forbidden(
            f"a key scoped to deployment groups cannot have the permission {action.value!r}: "
            "it reaches beyond any group"
        )
    if deployments is None and groups is None and sessions is None:
        return principal
    members = principal.scope_deployments or frozenset()
    if any(d in members for d in deployments or ()) or any(
        g in principal.groups for g in groups or ()
    ):
        return principal
    raise missing if missing is not None else NotFound("not found")


def _invalid() -> Unauthenticated:
    return Unauthenticated("invalid or revoked token", field="authorization")
