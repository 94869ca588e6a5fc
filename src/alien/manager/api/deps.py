"""FastAPI dependencies shared by the routes: the manager core and the ONE authorisation
dependency, :func:`require`.

Every route (HTTP and WebSocket) declares exactly one :class:`~alien.manager.auth.Action` by
depending on ``require(action)``; the dependency callable carries that action in
:data:`ACTION_ATTR`, so a test can walk ``app.routes`` and prove that none lacks one (deny by
default: a route without it is a failing test, not an open door). What the dependency checks
follows from the action's table in :mod:`alien.manager.auth`:

* a token action → the bearer token is resolved and passed to
  :func:`~alien.manager.auth.authorize` ("could this caller ever do this?"); the route checks the
  resource's scope once it loaded it;
* ``deferred=True`` → only the token's form is checked here, and the operation resolves and
  authorises it inside its own transaction (the command routes: a create costs one batched
  write, not a read and then a write) — with this same action;
* a :data:`~alien.manager.auth.SIGNED_URL_ACTIONS` action → the URL's signature must sign this
  request (the command id in the path, ``dep``, ``exp``, ``lease``), no token;
* a :data:`~alien.manager.auth.PUBLIC_ACTIONS` action → nothing to check.

An ``AlienError`` raised here answers a WebSocket handshake too: Starlette sends the exception
handler's JSON response as the handshake's denial response.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Query
from starlette.requests import HTTPConnection

from alien.errors import Forbidden, Unauthenticated
from alien.manager import audit_events, tokens
from alien.manager.auth import (
    PUBLIC_ACTIONS,
    SIGNED_URL_ACTIONS,
    Action,
    Principal,
    authorize,
    bearer_token,
    resolve,
)
from alien.manager.commands.center import center_of
from alien.manager.commands.signing import Grant, UrlOp
from alien.manager.core import ManagerCore
from alien.manager.services.audit import AuditLog

#: The attribute of a ``require(...)`` dependency that names the action its route declares.
ACTION_ATTR = "alien_action"

_URL_OPS = {
    Action.COMMAND_PARAMS_FETCH: UrlOp.PARAMS_GET,
    Action.COMMAND_RESULT_STORE: UrlOp.RESULT_PUT,
    Action.COMMAND_RESULT_FETCH: UrlOp.RESULT_GET,
    Action.COMMAND_RESPOND: UrlOp.RESPOND,
}


T = TypeVar("T")


def app_held(conn: HTTPConnection, name: str, make: Callable[[], T]) -> T:
    """What the app keeps under ``name`` in its state (what lives in one manager process's
    memory: connected agents, pending dials, open legs), made on first use (call from the
    event loop)."""
    state = conn.app.state
    held: T | None = getattr(state, name, None)
    if held is None:
        held = make()
        setattr(state, name, held)
    return held


def get_core(conn: HTTPConnection) -> ManagerCore:
    return conn.app.state.core  # type: ignore[no-any-return]


Core = Annotated[ManagerCore, Depends(get_core)]


def identify(core: ManagerCore, authorization: str | None) -> Principal | None:
    """The caller behind an ``Authorization`` header value (``None`` when there is none)."""
    token = bearer_token(authorization)
    if token is None:
        return None
    with core.db.read() as session:
        return resolve(session, token)


def get_caller(conn: HTTPConnection, core: Core) -> Principal | None:
    return identify(core, conn.headers.get("authorization"))


def presented_token(conn: HTTPConnection) -> str:
    """The bearer token, refused at once (401) when missing or not of our form."""
    token = bearer_token(conn.headers.get("authorization"))
    if token is None:
        raise Unauthenticated("this route needs 'Authorization: Bearer <token>'")
    if tokens.parse(token) is None:
        raise Unauthenticated("invalid or revoked token", field="authorization")
    return token


def require(action: Action, *, deferred: bool = False) -> Callable[..., Any]:
    """The dependency by which a route declares (and is held to) ``action``.

    Its value: the :class:`Principal` for token actions, the token string with ``deferred``,
    the verified :class:`Grant` for signed-URL actions, ``None`` for public ones.
    """
    dependency: Callable[..., Any]
    if action in PUBLIC_ACTIONS:

        async def dependency() -> None:
            return None

    elif action in SIGNED_URL_ACTIONS:
        dependency = _signed_url(_URL_OPS[action])
    elif deferred:

        async def dependency(conn: HTTPConnection) -> str:
            return presented_token(conn)

    else:

        def dependency(
            conn: HTTPConnection, caller: Annotated[Principal | None, Depends(get_caller)]
        ) -> Principal:
            try:
                return authorize(caller, action)
            except Forbidden as refused:
                if caller is not None:
                    _audit_refusal(conn, caller, action, refused)
                raise

    dependency.__name__ = f"require_{action.name.lower()}"
    setattr(dependency, ACTION_ATTR, action)
    return dependency


def _audit_refusal(
    conn: HTTPConnection, caller: Principal, action: Action, refused: Forbidden
) -> None:
    """A known caller whose role does not allow ``action`` leaves a sealed trace. Anonymous and
    garbage tokens do not: anyone can send those, and the trail would only record noise. (A
    group-scoped key asking about another group gets 404, like a missing resource, and is not
    recorded either, so the trail does not confirm the resource exists.)"""
    core = get_core(conn)
    with core.db.write() as session:
        audit_events.denied(
            session, AuditLog.in_data_dir(core.settings.data_dir), caller, action.value, refused
        )


def _signed_url(op: UrlOp) -> Callable[..., Grant]:
    async def verify(
        conn: HTTPConnection,
        dep: Annotated[str, Query(description="the deployment the URL was signed for")],
        exp: Annotated[int, Query(description="expiry, unix seconds")],
        sig: Annotated[str, Query(description="the URL's signature")],
    ) -> Grant:
        command_id = conn.path_params.get("command_id", "")
        grant = Grant(op, command_id, dep, exp, conn.query_params.get("lease", ""))
        # A signature is URL-safe base64; anything else is no signature (and constant-time
        # comparison refuses non-ASCII text with a TypeError, which must not become a 500).
        center_of(conn).signer.verify(grant, sig if sig.isascii() else None)
        return grant

    return verify
