"""Who may call what: every route, every caller, own and other deployment group, from ONE table.

Callers (one per token kind, role and scope):

* ``none``, ``garbage``, ``revoked_key``, ``revoked_group`` (an onboarding token),
  ``expired_session`` (a debug session whose TTL ran out) — never authenticated;
* ``admin``, ``operator``, ``debugger``, ``viewer`` — unscoped API keys;
* ``admin@g`` … ``viewer@g`` — the same roles, scoped to group G1 (the *own* group);
* ``group`` — G1's onboarding token;
* ``dep``, ``dep_other`` — the deployment tokens of D1 (in G1) and D2 (in G2);
* ``dbg``, ``dbg_other`` — the debug-session tokens of S1 (on A1, in G1) and S2 (on A2, in G2).

Each row is one route: the action it must declare, who succeeds on the own group's resource and
with which status, and how to build the call. Everything else follows from three rules:

1. a caller that is not allowed gets 401 ``UNAUTHENTICATED`` without a valid token, else 403
   ``FORBIDDEN`` (a row may name another refusal where the route has a reason to differ);
2. on the other group's resource (``RESOURCE`` rows) the world is mirrored: ``dep_other`` and
   ``dbg_other`` take the places of ``dep`` and ``dbg``, and a key scoped to G1 gets exactly
   what it gets for a resource that does not exist (the *ghost*: same status, code, field and
   message but for the name) — a scoped key cannot even learn that something exists elsewhere;
   so does ``dep`` where it may read its own deployment's resource (``dep_other``, refused on
   G1's, is refused with that 404 too: the row's ``refusals``);
3. ``LIST`` rows answer the allowed with a list in which a scoped key finds G1's item and never
   G2's, where an unscoped one finds both.

The table must cover every route of the app (walked from ``app.routes``, WebSockets included),
and each route must declare exactly the row's action through the one authorisation dependency.
Requests for one row are made in one test, against one manager per module and database.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
from agent_double import KNOWN_COMMANDS, Deployment, running_deployment
from dbg_world import manager_env, register_aws
from debug_moto import MotoServer
from fastapi.routing import iter_route_contexts
from typer.testing import CliRunner
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from alien.cli.main import app as alien_app
from alien.manager.api.deps import ACTION_ATTR
from alien.manager.app import create_app
from alien.manager.auth import Action
from alien.manager.settings import ManagerSettings
from support.api import ApiClient
from support.databases import database_for
from support.manager import ManagerProcess
from support.names import unique
from support.payloads import sample_manifest, sample_package

Side = Literal["own", "other", "ghost"]
UNAUTHENTICATED = ("none", "garbage", "revoked_key", "revoked_group", "expired_session")
ROLES = ("admin", "operator", "debugger", "viewer")
CALLERS = (
    *UNAUTHENTICATED,
    *ROLES,
    *(f"{role}@g" for role in ROLES),
    "group",
    "dep",
    "dep_other",
    "dbg",
    "dbg_other",
)
EVERYONE = frozenset(CALLERS)
MIRROR = {"dep": "dep_other", "dep_other": "dep", "dbg": "dbg_other", "dbg_other": "dbg"}
GHOST_SUFFIX = "0" * 26


def keys(*roles: str, scoped: bool = True) -> frozenset[str]:
    """The API keys of these roles, unscoped and (unless ``scoped=False``) scoped to G1."""
    return frozenset(roles) | (frozenset(f"{r}@g" for r in roles) if scoped else frozenset())


READERS = keys(*ROLES)
SCOPED_READERS = READERS - keys(*ROLES, scoped=False)
OPERATORS = keys("admin", "operator")


class Scope(Enum):
    GLOBAL = "global"  # about no group's resource: the own call only
    RESOURCE = "resource"  # about one resource: own, mirrored other, and the ghost
    LIST = "list"  # a list a scoped key sees filtered


@dataclass(frozen=True)
class Call:
    method: str  # "WS" for a WebSocket handshake
    path: str
    json: Any = None
    content: bytes | None = None
    tokens: Mapping[str, str] = field(default_factory=dict)  # callers bound to a fresh resource
    ref: str = ""  # the name the answer may quote (normalised when comparing with the ghost)
    headers: Mapping[str, str] = field(default_factory=dict)  # besides the caller's token


@dataclass(frozen=True)
class Row:
    route: tuple[str, str]
    action: Action
    allow: frozenset[str]
    ok: int
    call: Callable[[World, Side], Call]
    scope: Scope = Scope.RESOURCE
    refusals: Mapping[str, int] = field(default_factory=dict)
    listed: Callable[[World], tuple[str, str]] | None = None
    hidden_from: frozenset[str] | None = None  # default: the scoped keys and ``dep`` in ``allow``

    @property
    def name(self) -> str:
        return " ".join(self.route)

    def hides_from(self, caller: str) -> bool:
        """Whether ``caller`` must find the other group's resource as if it did not exist."""
        if self.hidden_from is not None:
            return caller in self.hidden_from
        return (caller.endswith("@g") or caller in ("dep", "dbg")) and caller in self.allow


@dataclass
class World:
    """G1 ("own") and G2 ("other"), each with a running deployment D, a push-model AWS
    deployment A with a live debug session S, a release R (D's) and a pending command C; D3 in
    G1 serves the signed-URL flows."""

    manager: ManagerProcess
    moto: MotoServer
    admin: ApiClient
    anonymous: ApiClient
    groups: dict[str, dict[str, Any]]
    deployments: dict[str, Deployment]
    aws: dict[str, str]
    gated: dict[str, str]  # push-model AWS deployments whose debug policy requires approval
    sessions: dict[str, str]
    commands: dict[str, str]
    approvals: dict[str, str]  # a session waiting for approval on each gated deployment
    signer: Deployment
    blobs: dict[str, str]  # a package uploaded by a key scoped to G1 ("own") and one to G2
    tokens: dict[str, str | None]
    ghost: str = field(default_factory=lambda: unique("ghost"))

    # --- references by side (the ghost is a well-formed name of nothing) ------------------

    def group(self, side: Side) -> str:
        return self.ghost if side == "ghost" else self.groups[side]["name"]

    def dep_ref(self, side: Side) -> str:
        return "dep_" + GHOST_SUFFIX if side == "ghost" else self.deployments[side].ref

    def dep_id(self, side: Side) -> str:
        return "dep_" + GHOST_SUFFIX if side == "ghost" else self.deployments[side].id

    def aws_ref(self, side: Side) -> str:
        return f"{self.groups['own']['name']}/{self.ghost}" if side == "ghost" else self.aws[side]

    def session(self, side: Side) -> str:
        return "dbg_" + GHOST_SUFFIX if side == "ghost" else self.sessions[side]

    def approval(self, side: Side) -> str:
        return "dbg_" + GHOST_SUFFIX if side == "ghost" else self.approvals[side]

    def command(self, side: Side) -> str:
        return "cmd_" + GHOST_SUFFIX if side == "ghost" else self.commands[side]

    def release(self, side: Side) -> str:
        return "rel_" + GHOST_SUFFIX if side == "ghost" else self.deployments[side].release

    def blob(self, side: Side) -> str:
        return "sha256:" + "0" * 64 if side == "ghost" else self.blobs[side]

    # --- fresh resources, for calls that use theirs up ------------------------------------

    def ok(self, response: httpx.Response) -> Any:
        assert response.status_code < 300, response.text
        return response.json() if response.content else None

    def fresh_group(self) -> str:
        return self.ok(self.admin.post("/v1/groups", json={"name": unique("grp")}))["name"]

    def fresh_key(self) -> str:
        return self.ok(self.admin.post("/v1/api-keys", json={"name": "k", "role": "viewer"}))["id"]

    def fresh_group_token(self, side: Side) -> str:
        if side == "ghost":
            return "gtk_" + GHOST_SUFFIX
        return self.ok(self.admin.post(f"/v1/groups/{self.group(side)}/tokens", json={}))["id"]

    def fresh_deployment(self, side: Side) -> str:
        return self.fresh_deployment_and_token(side)[0]

    def fresh_deployment_and_token(self, side: Side) -> tuple[str, Mapping[str, str]]:
        """A new deployment, and its token bound to dep(_other)."""
        if side == "ghost":
            return self.dep_id(side), {}
        token = self.admin.create_group_token(self.group(side))
        onboarded = self.admin.onboard(token, unique("dep"))
        bound = "dep" if side == "own" else "dep_other"
        return onboarded["deployment"]["id"], {bound: onboarded["token"]}

    def fresh_command(self, side: Side) -> str:
        if side == "ghost":
            return self.command(side)
        body = {"deployment": self.dep_ref(side), "command": "noop"}
        return self.ok(self.admin.post("/v1/commands", json=body))["id"]

    def fresh_session(self, side: Side) -> tuple[str, Mapping[str, str]]:
        """A live session opened by the ``debugger`` key, and its token bound to dbg(_other)."""
        if side == "ghost":
            return self.session(side), {}
        body = {"deployment": self.aws[side], "reason": "matrix"}
        opened = self.ok(self.call_as("debugger", "POST", "/v1/debug-sessions", json=body))
        bound = "dbg" if side == "own" else "dbg_other"
        return opened["id"], {bound: opened["token"]}

    def fresh_approval(self, side: Side) -> str:
        """A debug session waiting for the vendor's approval (its approval's subject)."""
        if side == "ghost":
            return self.approval(side)
        body = {"deployment": self.gated[side], "reason": "needs a yes"}
        opened = self.ok(self.call_as("debugger", "POST", "/v1/debug-sessions", json=body))
        assert opened["state"] == "pending_approval", opened
        return opened["id"]  # type: ignore[no-any-return]

    def fresh_push_deployment(self, side: Side) -> str:
        """A push-model deployment without credentials yet; its reference."""
        if side == "ghost":
            return self.aws_ref(side)
        name = unique("push")
        register_aws(self.admin, self.moto, self.group(side), name)
        return f"{self.group(side)}/{name}"

    def call_as(self, caller: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        token = self.tokens[caller]
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.anonymous.request(method, path, headers=headers, **kwargs)

    # --- a command's signed URLs, as its agent is given them ------------------------------

    def offer(self) -> dict[str, Any]:
        """A fresh command on D3 with params by reference, leased by D3's agent over HTTP."""
        ref = self.signer.ref
        stored = self.ok(
            self.admin.post(
                "/v1/commands/payloads", params={"deployment": ref}, json={"report": "q3"}
            )
        )
        body = {"deployment": ref, "command": "echo", "params_ref": stored}
        command_id = self.ok(self.admin.post("/v1/commands", json=body))["id"]
        agent = self.admin.with_token(self.signer.token)
        try:
            poll = self.ok(agent.post("/v1/agent/commands/lease", params={"wait": 0, "max": 100}))
        finally:
            agent.close()
        (offer,) = [m for m in poll["messages"] if m["envelope"]["id"] == command_id]
        return offer

    def result_url(self) -> str:
        """The signed URL of a stored result: uploaded, then reported as the command's answer."""
        offer = self.offer()
        envelope = offer["envelope"]
        stored = self.anonymous.request("PUT", offer["result_upload_url"], content=b'{"rows": 1}')
        result_ref = self.ok(stored)
        response = {
            "command_id": envelope["id"],
            "lease_id": envelope["lease_id"],
            "ok": True,
            "result_ref": result_ref,
        }
        self.ok(self.anonymous.post(envelope["response_url"], json=response))
        return result_ref["url"]  # type: ignore[no-any-return]


def _path(url: str) -> str:
    parsed = httpx.URL(url)
    return f"{parsed.path}?{parsed.query.decode()}"


def _respond(w: World, side: Side) -> Call:
    offer = w.offer()
    envelope = offer["envelope"]
    response = {
        "command_id": envelope["id"],
        "lease_id": envelope["lease_id"],
        "ok": True,
        "result": {"done": True},
    }
    return Call("POST", _path(envelope["response_url"]), json=response)


def _release_body(w: World, side: Side) -> dict[str, Any]:
    return {
        "manifest": sample_manifest(),
        "package_digest": w.blob("own"),
        "targets": {"type": "deployments", "deployments": [w.dep_id(side)]},
    }


def _register_aws(w: World, side: Side) -> Call:
    body = {
        "group": w.group(side),
        "name": unique("reg"),
        "region": "eu-west-1",
        "role_arn": "arn:aws:iam::123456789012:role/alien-management",
        "allowed_services": ["s3"],
    }
    return Call("POST", "/v1/aws-deployments", json=body, ref=w.group(side))


def _delete_deployment(w: World, side: Side) -> Call:
    """A fresh deployment, deleted by the vendor or by itself (its token leaving: the customer
    cutting the vendor off); the other deployment's token finds it as if it did not exist."""
    dep_id, bound = w.fresh_deployment_and_token(side)
    return Call("DELETE", f"/v1/deployments/{dep_id}", tokens=bound, ref=dep_id)


def _decide(verdict: str) -> Callable[[World, Side], Call]:
    def make(w: World, side: Side) -> Call:
        subject = w.fresh_approval(side)
        return Call("POST", f"/v1/approvals/{subject}/{verdict}", json={}, ref=subject)

    return make


def _issue_credentials(w: World, side: Side) -> Call:
    ref = w.fresh_push_deployment(side)
    return Call("POST", "/v1/customer-credentials", json={"deployment": ref}, ref=ref)


def _cancel_command(w: World, side: Side) -> Call:
    command_id = w.fresh_command(side)
    return Call("POST", f"/v1/commands/{command_id}/cancel", json={}, ref=command_id)


def _session_call(method: str, suffix: str, body: Any = None) -> Callable[[World, Side], Call]:
    def make(w: World, side: Side) -> Call:
        session_id, bound = w.fresh_session(side)
        path = f"/v1/debug-sessions/{session_id}{suffix}"
        return Call(method, path, json=body, tokens=bound, ref=session_id)

    return make


def _live_session(path: str) -> Callable[[World, Side], Call]:
    return lambda w, s: Call("GET", path.format(s=w.session(s)), ref=w.session(s))


DBG_READERS = keys("admin", "operator", "debugger")
SESSION_READERS = DBG_READERS | {"dbg"}
AGENTS = frozenset({"dep", "dep_other"})  # each on its own deployment: no "other side" to it

ROWS: list[Row] = [
    Row(
        ("GET", "/v1/health"),
        Action.HEALTH,
        EVERYONE,
        200,
        lambda w, s: Call("GET", "/v1/health"),
        Scope.GLOBAL,
    ),
    # --- API keys: unscoped admins only ---------------------------------------------------
    Row(
        ("POST", "/v1/api-keys"),
        Action.KEYS_MANAGE,
        frozenset({"admin"}),
        201,
        lambda w, s: Call("POST", "/v1/api-keys", json={"name": "k", "role": "viewer"}),
        Scope.GLOBAL,
    ),
    Row(
        ("GET", "/v1/api-keys"),
        Action.KEYS_MANAGE,
        frozenset({"admin"}),
        200,
        lambda w, s: Call("GET", "/v1/api-keys"),
        Scope.GLOBAL,
    ),
    Row(
        ("DELETE", "/v1/api-keys/{key_id}"),
        Action.KEYS_MANAGE,
        frozenset({"admin"}),
        200,
        lambda w, s: Call("DELETE", f"/v1/api-keys/{w.fresh_key()}"),
        Scope.GLOBAL,
    ),
    # --- groups ---------------------------------------------------------------------------
    Row(
        ("POST", "/v1/groups"),
        Action.GROUPS_WRITE,
        keys("admin", "operator", scoped=False),
        201,
        lambda w, s: Call("POST", "/v1/groups", json={"name": unique("grp")}),
        Scope.GLOBAL,
    ),
    Row(
        ("GET", "/v1/groups"),
        Action.GROUPS_READ,
        READERS,
        200,
        lambda w, s: Call("GET", "/v1/groups"),
        Scope.LIST,
        listed=lambda w: (w.groups["own"]["id"], w.groups["other"]["id"]),
    ),
    Row(
        ("GET", "/v1/groups/{group}"),
        Action.GROUPS_READ,
        READERS,
        200,
        lambda w, s: Call("GET", f"/v1/groups/{w.group(s)}", ref=w.group(s)),
    ),
    Row(
        ("PATCH", "/v1/groups/{group}"),
        Action.GROUPS_WRITE,
        keys("admin", "operator", scoped=False),
        200,
        lambda w, s: Call("PATCH", f"/v1/groups/{w.fresh_group()}", json={"description": "d"}),
        Scope.GLOBAL,
    ),
    Row(
        ("DELETE", "/v1/groups/{group}"),
        Action.GROUPS_WRITE,
        keys("admin", "operator", scoped=False),
        204,
        lambda w, s: Call("DELETE", f"/v1/groups/{w.fresh_group()}"),
        Scope.GLOBAL,
    ),
    Row(
        ("POST", "/v1/groups/{group}/tokens"),
        Action.GROUP_TOKENS_WRITE,
        OPERATORS,
        201,
        lambda w, s: Call("POST", f"/v1/groups/{w.group(s)}/tokens", json={}, ref=w.group(s)),
    ),
    Row(
        ("GET", "/v1/groups/{group}/tokens"),
        Action.GROUP_TOKENS_READ,
        OPERATORS,
        200,
        lambda w, s: Call("GET", f"/v1/groups/{w.group(s)}/tokens", ref=w.group(s)),
    ),
    Row(
        ("DELETE", "/v1/groups/{group}/tokens/{token_id}"),
        Action.GROUP_TOKENS_WRITE,
        OPERATORS,
        200,
        lambda w, s: Call(
            "DELETE",
            f"/v1/groups/{w.group(s)}/tokens/{w.fresh_group_token(s)}",
            ref=w.group(s),
        ),
    ),
    # --- deployments ----------------------------------------------------------------------
    Row(
        ("POST", "/v1/onboard"),
        Action.ONBOARD,
        frozenset({"group"}),
        201,
        lambda w, s: Call("POST", "/v1/onboard", json={"name": unique("dep"), "platform": "local"}),
        Scope.GLOBAL,
    ),
    # The group token gets through to the route: its groups have no release aimed at them,
    # so the answer is NO_RELEASE (409), before the manager would call AWS.
    Row(
        ("GET", "/v1/onboard/aws"),
        Action.ONBOARD,
        frozenset({"group"}),
        409,
        lambda w, s: Call(
            "GET", f"/v1/onboard/aws?name={unique('dep')}&region=eu-west-1&account=123456789012"
        ),
        Scope.GLOBAL,
    ),
    Row(
        ("POST", "/v1/onboard/aws"),
        Action.ONBOARD,
        frozenset({"group"}),
        409,
        lambda w, s: Call(
            "POST",
            "/v1/onboard/aws",
            json={
                "name": unique("dep"),
                "region": "eu-west-1",
                "role_arn": "arn:aws:iam::123456789012:role/alien-x",
            },
        ),
        Scope.GLOBAL,
    ),
    Row(
        ("GET", "/v1/deployments"),
        Action.DEPLOYMENTS_LIST,
        READERS,
        200,
        lambda w, s: Call("GET", "/v1/deployments"),
        Scope.LIST,
        listed=lambda w: (w.deployments["own"].id, w.deployments["other"].id),
    ),
    Row(
        ("GET", "/v1/deployments/{ref:path}"),
        Action.DEPLOYMENT_READ,
        READERS | {"dep"},
        200,
        lambda w, s: Call("GET", f"/v1/deployments/{w.dep_ref(s)}", ref=w.dep_ref(s)),
        refusals={"dep_other": 404},
    ),
    Row(
        ("GET", "/v1/deployments/{ref:path}/wait"),
        Action.DEPLOYMENT_READ,
        READERS | {"dep"},
        200,
        lambda w, s: Call(
            "GET", f"/v1/deployments/{w.dep_ref(s)}/wait?state=pending&timeout=0", ref=w.dep_ref(s)
        ),
        refusals={"dep_other": 404},
    ),
    Row(
        ("DELETE", "/v1/deployments/{ref:path}"),
        Action.DEPLOYMENT_DELETE,
        OPERATORS | {"dep"},
        204,
        _delete_deployment,
        refusals={"dep_other": 404},
    ),
    Row(
        ("GET", "/v1/aws-deployments/{ref:path}"),
        Action.DEPLOYMENT_READ,
        READERS,
        200,
        lambda w, s: Call("GET", f"/v1/aws-deployments/{w.aws_ref(s)}", ref=w.aws_ref(s)),
        refusals={"dep": 404, "dep_other": 404},  # not theirs: as if it did not exist
        hidden_from=SCOPED_READERS | AGENTS,
    ),
    Row(
        ("POST", "/v1/aws-deployments"),
        Action.DEPLOYMENTS_REGISTER,
        keys("admin"),
        201,
        _register_aws,
    ),
    # --- packages and releases ------------------------------------------------------------
    Row(
        ("POST", "/v1/blobs"),
        Action.RELEASE_CREATE,
        OPERATORS,
        201,
        lambda w, s: Call("POST", "/v1/blobs", content=sample_package(unique("m"))),
        Scope.GLOBAL,
    ),
    Row(
        ("GET", "/v1/blobs/{digest}"),
        Action.RELEASE_CREATE,
        OPERATORS,
        200,
        lambda w, s: Call("GET", f"/v1/blobs/{w.blob(s)}", ref=w.blob(s)),
    ),
    Row(
        ("POST", "/v1/releases"),
        Action.RELEASE_CREATE,
        OPERATORS,
        201,
        lambda w, s: Call("POST", "/v1/releases", json=_release_body(w, s), ref=w.dep_id(s)),
    ),
    Row(
        ("GET", "/v1/releases"),
        Action.RELEASES_LIST,
        READERS,
        200,
        lambda w, s: Call("GET", "/v1/releases?limit=500"),
        Scope.LIST,
        listed=lambda w: (w.release("own"), w.release("other")),
    ),
    Row(
        ("GET", "/v1/releases/{release_id}"),
        Action.RELEASE_READ,
        READERS | {"dep"},
        200,
        lambda w, s: Call("GET", f"/v1/releases/{w.release(s)}", ref=w.release(s)),
        refusals={"dep_other": 404},
    ),
    Row(
        ("GET", "/v1/releases/{release_id}/package"),
        Action.RELEASE_DOWNLOAD,
        OPERATORS | {"dep"},
        200,
        lambda w, s: Call("GET", f"/v1/releases/{w.release(s)}/package", ref=w.release(s)),
        refusals={"dep_other": 404},
    ),
    # --- the agent channel ----------------------------------------------------------------
    Row(
        ("GET", "/v1/agent/next"),
        Action.AGENT,
        AGENTS,
        200,
        lambda w, s: Call("GET", "/v1/agent/next?wait=0"),
        Scope.GLOBAL,
    ),
    Row(
        ("POST", "/v1/agent/status"),
        Action.AGENT,
        AGENTS,
        200,
        lambda w, s: Call("POST", "/v1/agent/status", json={"v": 1, "type": "heartbeat"}),
        Scope.GLOBAL,
    ),
    Row(
        ("WS", "/v1/agent/connect"),
        Action.AGENT,
        AGENTS,
        101,
        lambda w, s: Call("WS", "/v1/agent/connect"),
        Scope.GLOBAL,
    ),
    Row(
        ("POST", "/v1/agent/commands/lease"),
        Action.AGENT,
        AGENTS,
        200,
        lambda w, s: Call("POST", "/v1/agent/commands/lease?wait=0"),
        Scope.GLOBAL,
    ),
    Row(
        # The agent's leg of a pull-model tunnel is only ever accepted for a dial the manager
        # announced (tunnel_open) with its one-time credential; here there is none, so even a
        # deployment token is refused, by the dial check (401).
        ("WS", "/v1/agent/debug-tunnels/{session_id}"),
        Action.AGENT,
        frozenset(),
        101,
        lambda w, s: Call("WS", f"/v1/agent/debug-tunnels/{w.session('own')}"),
        Scope.GLOBAL,
        refusals={"dep": 401, "dep_other": 401},
    ),
    # A long-polling agent's HTTP leg: opened only for an announced dial (none here: 401),
    # then used only with the leg id it was given (none here: 404 for any deployment token).
    Row(
        ("POST", "/v1/agent/debug-tunnels/{session_id}/http"),
        Action.AGENT,
        frozenset(),
        201,
        lambda w, s: Call("POST", f"/v1/agent/debug-tunnels/{w.session('own')}/http"),
        Scope.GLOBAL,
        refusals={"dep": 401, "dep_other": 401},
    ),
    *(
        Row(
            (method, f"/v1/agent/debug-tunnels/{{session_id}}/http{tail}"),
            Action.AGENT,
            frozenset(),
            ok,
            lambda w, s, method=method, tail=tail, query=query: Call(
                method,
                f"/v1/agent/debug-tunnels/{w.session('own')}/http{tail}{query}",
                headers={"alien-leg": "made-up"},
            ),
            Scope.GLOBAL,
            refusals={"dep": 404, "dep_other": 404},
        )
        for method, tail, query, ok in (
            ("POST", "/up", "?seq=0", 200),
            ("GET", "/down", "?ack=0&wait=0", 200),
            ("DELETE", "", "", 204),
        )
    ),
    # --- commands -------------------------------------------------------------------------
    Row(
        ("POST", "/v1/commands"),
        Action.COMMANDS_INVOKE,
        OPERATORS,
        201,
        lambda w, s: Call(
            "POST",
            "/v1/commands",
            json={"deployment": w.dep_ref(s), "command": "noop"},
            ref=w.dep_ref(s),
        ),
    ),
    Row(
        ("GET", "/v1/commands"),
        Action.COMMANDS_READ,
        READERS,
        200,
        lambda w, s: Call("GET", "/v1/commands?limit=500"),
        Scope.LIST,
        listed=lambda w: (w.command("own"), w.command("other")),
    ),
    Row(
        ("GET", "/v1/commands/{command_id}"),
        Action.COMMANDS_READ,
        READERS,
        200,
        lambda w, s: Call("GET", f"/v1/commands/{w.command(s)}", ref=w.command(s)),
    ),
    Row(
        ("POST", "/v1/commands/{command_id}/cancel"),
        Action.COMMANDS_CANCEL,
        OPERATORS,
        200,
        _cancel_command,
    ),
    Row(
        ("POST", "/v1/commands/payloads"),
        Action.COMMANDS_INVOKE,
        OPERATORS,
        201,
        lambda w, s: Call(
            "POST",
            f"/v1/commands/payloads?deployment={w.dep_ref(s)}",
            content=b'{"report": "q3"}',
            ref=w.dep_ref(s),
        ),
    ),
    # Signed URLs: the signature is the authority, whoever calls and whatever token they hold.
    Row(
        ("GET", "/v1/command-blobs/{command_id}/params"),
        Action.COMMAND_PARAMS_FETCH,
        EVERYONE,
        200,
        lambda w, s: Call("GET", _path(w.offer()["envelope"]["params_ref"]["url"])),
        Scope.GLOBAL,
    ),
    Row(
        ("PUT", "/v1/command-blobs/{command_id}/result"),
        Action.COMMAND_RESULT_STORE,
        EVERYONE,
        200,
        lambda w, s: Call("PUT", _path(w.offer()["result_upload_url"]), content=b'{"rows": 1}'),
        Scope.GLOBAL,
    ),
    Row(
        ("GET", "/v1/command-blobs/{command_id}/result"),
        Action.COMMAND_RESULT_FETCH,
        EVERYONE,
        200,
        lambda w, s: Call("GET", _path(w.result_url())),
        Scope.GLOBAL,
    ),
    Row(
        ("POST", "/v1/command-responses/{command_id}"),
        Action.COMMAND_RESPOND,
        EVERYONE,
        200,
        _respond,
        Scope.GLOBAL,
    ),
    # --- debugging ------------------------------------------------------------------------
    Row(
        ("GET", "/v1/debug-policies/{ref:path}"),
        Action.DEBUG_POLICY_READ,
        READERS,
        200,
        lambda w, s: Call("GET", f"/v1/debug-policies/{w.aws_ref(s)}", ref=w.aws_ref(s)),
    ),
    Row(
        ("PUT", "/v1/debug-policies/{ref:path}"),
        Action.DEBUG_POLICY_WRITE,
        keys("admin"),
        200,
        lambda w, s: Call(
            "PUT", f"/v1/debug-policies/{w.aws_ref(s)}", json={"mode": "allowed"}, ref=w.aws_ref(s)
        ),
    ),
    Row(
        ("POST", "/v1/debug-sessions"),
        Action.DEBUG_OPEN,
        keys("admin", "debugger"),
        201,
        lambda w, s: Call(
            "POST",
            "/v1/debug-sessions",
            json={"deployment": w.aws_ref(s), "reason": "matrix"},
            ref=w.aws_ref(s),
        ),
    ),
    Row(
        ("GET", "/v1/debug-sessions"),
        Action.DEBUG_SESSIONS_LIST,
        DBG_READERS,
        200,
        lambda w, s: Call("GET", "/v1/debug-sessions?limit=1000"),
        Scope.LIST,
        listed=lambda w: (w.session("own"), w.session("other")),
    ),
    Row(
        ("GET", "/v1/debug-sessions/{session_id}"),
        Action.DEBUG_SESSION_READ,
        SESSION_READERS,
        200,
        _live_session("/v1/debug-sessions/{s}"),
        refusals={"dbg_other": 404},  # another session: as if it did not exist
    ),
    Row(
        ("GET", "/v1/debug-sessions/{session_id}/wait"),
        Action.DEBUG_SESSION_READ,
        SESSION_READERS,
        200,
        _live_session("/v1/debug-sessions/{s}/wait?known=pending_approval&timeout=0"),
        refusals={"dbg_other": 404},  # another session: as if it did not exist
    ),
    Row(
        ("GET", "/v1/debug-sessions/{session_id}/requests"),
        Action.DEBUG_SESSION_READ,
        SESSION_READERS,
        200,
        _live_session("/v1/debug-sessions/{s}/requests"),
        refusals={"dbg_other": 404},  # another session: as if it did not exist
    ),
    Row(
        # Its opener (the sessions here are opened by the unscoped debugger), an admin, or the
        # session's own token; another debugger key may not close someone else's session.
        ("POST", "/v1/debug-sessions/{session_id}/close"),
        Action.DEBUG_SESSION_CLOSE,
        keys("admin") | {"debugger", "dbg"},
        200,
        _session_call("POST", "/close", {"exit_code": 0}),
        hidden_from=frozenset({"admin@g", "debugger@g", "dbg"}),
        refusals={"dbg_other": 404},
    ),
    Row(
        ("POST", "/v1/debug-sessions/{session_id}/revoke"),
        Action.DEBUG_SESSION_REVOKE,
        keys("admin"),
        200,
        _session_call("POST", "/revoke", {}),
    ),
    Row(
        ("WS", "/v1/debug-sessions/{session_id}/tunnel"),
        Action.DEBUG_TUNNEL,
        frozenset({"dbg"}),
        101,
        _session_call("WS", "/tunnel"),
    ),
    # --- audit and access governance ----------------------------------------------------
    Row(
        ("GET", "/v1/audit"),
        Action.AUDIT_READ,
        keys("admin", "operator", scoped=False),
        200,
        lambda w, s: Call("GET", "/v1/audit?limit=10"),
        Scope.GLOBAL,
    ),
    Row(
        ("GET", "/v1/audit/head"),
        Action.AUDIT_READ,
        keys("admin", "operator", scoped=False),
        200,
        lambda w, s: Call("GET", "/v1/audit/head"),
        Scope.GLOBAL,
    ),
    Row(
        ("GET", "/v1/audit/public-key"),
        Action.AUDIT_PUBLIC_KEY,
        EVERYONE,
        200,
        lambda w, s: Call("GET", "/v1/audit/public-key"),
        Scope.GLOBAL,
    ),
    Row(
        ("GET", "/v1/customer/audit"),
        Action.CUSTOMER_AUDIT_READ,
        AGENTS,
        200,
        lambda w, s: Call("GET", "/v1/customer/audit?limit=10"),
        Scope.GLOBAL,
    ),
    Row(
        ("GET", "/v1/customer/policy"),
        Action.CUSTOMER_POLICY_READ,
        AGENTS,
        200,
        lambda w, s: Call("GET", "/v1/customer/policy"),
        Scope.GLOBAL,
    ),
    Row(
        ("PATCH", "/v1/customer/policy"),
        Action.CUSTOMER_POLICY_WRITE,
        AGENTS,
        200,
        lambda w, s: Call("PATCH", "/v1/customer/policy", json={"access": True}),
        Scope.GLOBAL,
    ),
    Row(
        ("GET", "/v1/policies/{ref:path}"),
        Action.DEBUG_POLICY_READ,
        READERS,
        200,
        lambda w, s: Call("GET", f"/v1/policies/{w.dep_ref(s)}", ref=w.dep_ref(s)),
    ),
    Row(
        ("POST", "/v1/customer-credentials"),
        Action.CUSTOMER_CREDENTIALS_ISSUE,
        keys("admin"),
        201,
        _issue_credentials,
    ),
    Row(
        ("GET", "/v1/approvals"),
        Action.APPROVALS_READ,
        READERS | AGENTS,
        200,
        lambda w, s: Call("GET", "/v1/approvals?limit=1000"),
        Scope.LIST,
        listed=lambda w: (w.approval("own"), w.approval("other")),
    ),
    Row(
        # A deployment token may read approvals, of its own deployment only: any other is "not
        # found" to it (these wait on push-model deployments, which no agent token speaks for).
        ("GET", "/v1/approvals/{subject_id}"),
        Action.APPROVALS_READ,
        READERS,
        200,
        lambda w, s: Call("GET", f"/v1/approvals/{w.approval(s)}", ref=w.approval(s)),
        refusals={"dep": 404, "dep_other": 404},
    ),
    Row(
        ("POST", "/v1/approvals/{subject_id}/approve"),
        Action.APPROVALS_DECIDE,
        keys("admin"),
        200,
        _decide("approve"),
        refusals={"dep": 404, "dep_other": 404},
    ),
    Row(
        ("POST", "/v1/approvals/{subject_id}/deny"),
        Action.APPROVALS_DECIDE,
        keys("admin"),
        200,
        _decide("deny"),
        refusals={"dep": 404, "dep_other": 404},
    ),
]

#: Routes FastAPI adds for the API's own documentation: public, and no part of the table.
DOCUMENTATION = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}

#: On PostgreSQL the default suite runs the rows whose scoping is done in SQL (every list, and a
#: lookup of each kind of resource); the other rows run there with `-m slow`.
POSTGRES_SUBSET = {row.route for row in ROWS if row.scope is Scope.LIST} | {
    ("GET", "/v1/groups/{group}"),
    ("GET", "/v1/deployments/{ref:path}"),
    ("GET", "/v1/blobs/{digest}"),
    ("POST", "/v1/releases"),
    ("GET", "/v1/releases/{release_id}"),
    ("POST", "/v1/commands"),
    ("GET", "/v1/commands/{command_id}"),
    ("POST", "/v1/debug-sessions"),
    ("GET", "/v1/debug-sessions/{session_id}"),
    ("GET", "/v1/approvals/{subject_id}"),
}


# --- the world -----------------------------------------------------------------------------


def _key(admin: ApiClient, role: str, groups: list[str] | None = None) -> str:
    body: dict[str, Any] = {"name": role, "role": role}
    if groups is not None:
        body["groups"] = groups
    response = admin.post("/v1/api-keys", json=body)
    assert response.status_code == 201, response.text
    return response.json()["key"]


def _scoped_upload(manager: ManagerProcess, admin: ApiClient, group_id: str) -> str:
    """The digest of a fresh package uploaded by an operator key scoped to ``group_id``."""
    with manager.client(_key(admin, "operator", [group_id])) as uploader:
        digest: str = uploader.upload(sample_package(unique("matrix")))["digest"]
    return digest


def _expired_session_token(w: World) -> str:
    body = {"deployment": w.aws["own"], "reason": "expiring", "ttl_seconds": 1}
    opened = w.ok(w.call_as("debugger", "POST", "/v1/debug-sessions", json=body))
    ended = w.ok(w.admin.get(f"/v1/debug-sessions/{opened['id']}/wait", params={"known": "active"}))
    assert ended["state"] == "expired", ended
    return opened["token"]


@pytest.fixture(scope="module")
def world(
    request: pytest.FixtureRequest,
    moto: MotoServer,
    tmp_path_factory: pytest.TempPathFactory,
    assert_clean_log: Callable[[ManagerProcess], None],
) -> Iterator[World]:
    with database_for(request.param) as url:
        manager = ManagerProcess(
            tmp_path_factory.mktemp("authz"), database_url=url, extra_env=manager_env(moto)
        ).start()
        admin = manager.client()
        groups = {side: admin.create_group(unique(f"g-{side}")) for side in ("own", "other")}
        deployments = {
            side: running_deployment(admin, group=g["name"], commands=KNOWN_COMMANDS)
            for side, g in groups.items()
        }
        aws, gated = {}, {}
        for side, g in groups.items():
            for kind in (aws, gated):
                name = unique("acme")
                register_aws(admin, moto, g["name"], name)
                kind[side] = f"{g['name']}/{name}"
            policy = {"mode": "approval_required"}
            assert admin.request("PUT", f"/v1/debug-policies/{gated[side]}", json=policy).is_success
        revoked = admin.post("/v1/api-keys", json={"name": "old", "role": "admin"}).json()
        assert admin.delete(f"/v1/api-keys/{revoked['id']}").status_code == 200
        own_group = groups["own"]["name"]
        revoked_group = admin.post(f"/v1/groups/{own_group}/tokens", json={}).json()
        gone = admin.delete(f"/v1/groups/{own_group}/tokens/{revoked_group['id']}")
        assert gone.status_code == 200
        tokens: dict[str, str | None] = {
            "none": None,
            "garbage": "ax_key_0123456789abcdef_" + "x" * 43,
            "revoked_key": revoked["key"],
            "revoked_group": revoked_group["token"],
            "admin": manager.admin_key,
            **{role: _key(admin, role) for role in ROLES if role != "admin"},
            **{f"{role}@g": _key(admin, role, [groups["own"]["id"]]) for role in ROLES},
            "group": admin.create_group_token(groups["own"]["name"]),
            "dep": deployments["own"].token,
            "dep_other": deployments["other"].token,
        }
        w = World(
            manager=manager,
            moto=moto,
            admin=admin,
            anonymous=manager.client(""),
            groups=groups,
            deployments=deployments,
            aws=aws,
            gated=gated,
            sessions={},
            commands={},
            approvals={},
            signer=running_deployment(admin, group=groups["own"]["name"], commands=KNOWN_COMMANDS),
            blobs={side: _scoped_upload(manager, admin, g["id"]) for side, g in groups.items()},
            tokens=tokens,
        )
        for side, bound in (("own", "dbg"), ("other", "dbg_other")):
            w.sessions[side], opened = w.fresh_session(side)  # type: ignore[arg-type]
            tokens[bound] = opened[bound]
            w.commands[side] = w.fresh_command(side)  # type: ignore[arg-type]
            w.approvals[side] = w.fresh_approval(side)  # type: ignore[arg-type]
        tokens["expired_session"] = _expired_session_token(w)
        try:
            yield w
        finally:
            w.anonymous.close()
            admin.close()
            manager.stop()
        assert_clean_log(manager)


# --- making the calls ----------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any

    @property
    def error(self) -> dict[str, Any]:
        assert isinstance(self.body, dict) and "error" in self.body, self.body
        return self.body["error"]  # type: ignore[no-any-return]


def _send(w: World, call: Call, token: str | None) -> Answer:
    headers = {**call.headers, **({"Authorization": f"Bearer {token}"} if token else {})}
    if call.method == "WS":
        try:
            with connect(w.manager.ws_url + call.path, additional_headers=headers, open_timeout=10):
                return Answer(101, None)
        except InvalidStatus as exc:
            return Answer(exc.response.status_code, json.loads(exc.response.body or b"null"))
    response = w.anonymous.request(
        call.method, call.path, json=call.json, content=call.content, headers=headers
    )
    is_json = response.headers.get("content-type", "").startswith("application/json")
    return Answer(response.status_code, response.json() if is_json else None)


@dataclass
class _Asker:
    """Makes one row's calls. A refused call changed nothing, so the next caller is given the
    same call (and the fresh resource it was built on) rather than a new one."""

    world: World
    row: Row
    spares: dict[str, Call] = field(default_factory=dict)

    def ask(self, side: Side, caller: str) -> tuple[Call, Answer]:
        call = self.spares.pop(side, None) or self.row.call(self.world, side)
        answer = _send(self.world, call, call.tokens.get(caller, self.world.tokens[caller]))
        if answer.status >= 400:
            self.spares[side] = call
        return call, answer


REFUSAL_CODES = {401: "UNAUTHENTICATED", 403: "FORBIDDEN", 404: "NOT_FOUND"}


def _refusal(row: Row, caller: str) -> tuple[int, str]:
    status = row.refusals.get(caller, 401 if caller in UNAUTHENTICATED else 403)
    return status, REFUSAL_CODES[status]


def _allowed_on_other(row: Row, caller: str) -> bool:
    return MIRROR.get(caller, caller) in row.allow


def _normalised(error: dict[str, Any], ref: str) -> tuple[Any, ...]:
    message = error["message"].replace(ref, "<ref>") if ref else error["message"]
    return error["code"], error.get("field"), message


def _check(row: Row, caller: str, side: Side, answer: Answer, allowed: bool) -> str | None:
    """``None`` when the answer is right, else what is wrong (one line)."""
    where = f"{caller} on {side}: {answer.status} {answer.body}"
    if allowed:
        return None if answer.status == row.ok else f"expected {row.ok}; {where}"
    status, code = _refusal(row, caller)
    if answer.status != status:
        return f"expected {status}; {where}"
    if answer.error["code"] != code:
        return f"expected code {code}; {where}"
    return None


def _check_list(w: World, row: Row, caller: str, answer: Answer) -> str | None:
    assert row.listed is not None
    own, other = row.listed(w)
    ids = {item.get("id", item.get("subject_id")) for item in answer.body["items"]}
    if caller.endswith("@g"):
        expected = {own}
    elif caller in ROLES:
        expected = {own, other}
    else:  # a token bound to a deployment that holds neither
        expected = set()
    seen = ids & {own, other}
    return None if seen == expected else f"{caller} listed {sorted(seen)}, not {sorted(expected)}"


@pytest.mark.parametrize("world", ["sqlite"], indirect=True)
def test_authz_matrix(world: World) -> None:
    """The whole table on SQLite: every row, every caller, own, other and nowhere."""
    _run_rows(world, ROWS)


@pytest.mark.postgres
@pytest.mark.parametrize("world", ["postgres"], indirect=True)
def test_authz_matrix_on_postgres(world: World) -> None:
    """The rows whose scoping is done in SQL, on PostgreSQL."""
    _run_rows(world, [row for row in ROWS if row.route in POSTGRES_SUBSET])


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("world", ["postgres"], indirect=True)
def test_authz_matrix_on_postgres_in_full(world: World) -> None:
    _run_rows(world, [row for row in ROWS if row.route not in POSTGRES_SUBSET])


def _run_rows(world: World, rows: list[Row]) -> None:
    """All rows' requests in one test (one world per database and worker); every problem of
    every row is reported together, by row."""
    problems = [p for row in rows for p in _run_row(world, row)]
    assert not problems, "\n".join(problems)


def _run_row(world: World, row: Row) -> list[str]:
    problems: list[str] = []
    asker = _Asker(world, row)
    for caller in CALLERS:
        _, answer = asker.ask("own", caller)
        problem = _check(row, caller, "own", answer, caller in row.allow)
        if problem is None and row.scope is Scope.LIST and caller in row.allow:
            problem = _check_list(world, row, caller, answer)
        if problem:
            problems.append(problem)
        if row.scope is not Scope.RESOURCE:
            continue
        hidden = row.hides_from(caller)
        other_call, other = asker.ask("other", caller)
        if not hidden:
            problem = _check(row, caller, "other", other, _allowed_on_other(row, caller))
            if problem:
                problems.append(problem)
            continue
        ghost_call, ghost = asker.ask("ghost", caller)
        if ghost.status < 400 or (other.status, _normalised(other.error, other_call.ref)) != (
            ghost.status,
            _normalised(ghost.error, ghost_call.ref),
        ):
            problems.append(
                f"{caller}: the other group's answer {other.status} {other.body} differs from "
                f"nothing's {ghost.status} {ghost.body}"
            )
    return [f"{row.name}: {problem}" for problem in problems]


# --- the table against the app -------------------------------------------------------------


def _declared(dependant: Any) -> list[Action]:
    found: list[Action] = []
    for dependency in dependant.dependencies:
        action = getattr(dependency.call, ACTION_ATTR, None)
        if action is not None:
            found.append(action)
        found += _declared(dependency)
    return found


def _app_routes(tmp_path: Path) -> dict[tuple[str, str], list[Action]]:
    app = create_app(ManagerSettings(data_dir=tmp_path / "data"))
    routes: dict[tuple[str, str], list[Action]] = {}
    for route in iter_route_contexts(app.routes):
        dependant = getattr(route, "dependant", None)
        if dependant is None:
            assert route.path in DOCUMENTATION, f"{route.path} is no API route and no doc page"
            continue
        for method in sorted(route.methods or {"WS"}):
            routes[(method, route.path)] = _declared(dependant)
    return routes


def test_every_route_declares_exactly_its_one_action(tmp_path: Path) -> None:
    """Deny by default, proven: a route without the authorisation dependency, with two, or
    without a row in the table fails here — as does a row for a route that is gone."""
    routes = _app_routes(tmp_path)
    table = {row.route: row.action for row in ROWS}
    assert len(table) == len(ROWS), "two rows for one route"
    assert set(routes) == set(table), {
        "routes without a row": sorted(set(routes) - set(table)),
        "rows without a route": sorted(set(table) - set(routes)),
    }
    wrong = {r: a for r, a in routes.items() if a != [table[r]]}
    assert not wrong, f"routes declaring other than their one action: {wrong}"


@pytest.mark.parametrize("world", ["sqlite"], indirect=True)
def test_forged_or_missing_signatures_are_refused(world: World) -> None:
    """The signed-URL routes take no token: without their exact signature nobody gets in."""
    offer = world.offer()
    urls = [
        ("GET", offer["envelope"]["params_ref"]["url"]),
        ("PUT", offer["result_upload_url"]),
        ("POST", offer["envelope"]["response_url"]),
    ]
    for method, url in urls:
        forged = httpx.URL(url).copy_merge_params({"sig": "A" * 43})
        for target in (forged, httpx.URL(url).copy_remove_param("sig")):
            response = world.admin.request(method, str(target), content=b"{}")
            assert response.status_code in (403, 422), (method, target, response.text)
            if response.status_code == 403:
                assert response.json()["error"]["code"] == "SIGNED_URL_INVALID"


@pytest.mark.parametrize("world", ["sqlite"], indirect=True)
def test_alien_keys_creates_scoped_keys_lists_and_revokes_them(world: World) -> None:
    """``alien keys``: the key is printed once, alone on stdout; it is scoped as asked; ``ls``
    shows its groups; once revoked it is refused from the next request on."""
    runner = CliRunner()
    env = {"ALIEN_MANAGER_URL": world.manager.url, "ALIEN_TOKEN": world.manager.admin_key}
    own = world.groups["own"]["name"]
    created = runner.invoke(
        alien_app, ["keys", "create", "--role", "viewer", "--group", own, "--name", "ci"], env=env
    )
    assert created.exit_code == 0, created.output
    key = created.stdout.strip()
    assert key.startswith("ax_key_") and "\n" not in key
    key_id = "key_" + key.split("_")[2]

    with world.admin.with_token(key) as scoped:
        assert scoped.get(f"/v1/deployments/{world.dep_ref('own')}").status_code == 200
        assert scoped.get(f"/v1/deployments/{world.dep_ref('other')}").status_code == 404
        listed = runner.invoke(alien_app, ["keys", "ls", "--json"], env=env)
        assert listed.exit_code == 0, listed.output
        [row] = [k for k in json.loads(listed.stdout) if k["id"] == key_id]
        assert (row["role"], [g["name"] for g in row["groups"]]) == ("viewer", [own])
        assert key not in listed.stdout

        revoked = runner.invoke(alien_app, ["keys", "revoke", key_id], env=env)
        assert revoked.exit_code == 0, revoked.output
        assert scoped.get(f"/v1/deployments/{world.dep_ref('own')}").status_code == 401

    refused = runner.invoke(
        alien_app, ["keys", "create", "--role", "viewer"], env={**env, "ALIEN_TOKEN": key}
    )
    assert refused.exit_code == 1 and refused.stdout == ""
