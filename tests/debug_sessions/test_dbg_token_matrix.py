"""Every debugging route by every kind of caller, from ONE table, on SQLite and PostgreSQL.

Callers: no token, API keys of each role, a group token, a deployment token, the session token
of the session the route is about ("own_session"), another live session's token, the token of a
session that has ended, and garbage. Each row lists who is allowed and the success status;
everyone else is refused: 401 ``UNAUTHENTICATED`` without a valid token (an ended session's
token is no longer valid), 403 ``FORBIDDEN`` for a valid token that may not do this, 404 where
a token bound to another deployment or session is told nothing exists. The tunnel's
WebSocket handshake is a row too.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from dbg_world import register_aws
from debug_moto import MotoServer
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from alien.client.aio import AsyncManagerClient
from alien.client.config import ClientConfig
from alien.debug.session import DebugSession
from alien.protocol.audit import Signer, verify_chain, verify_deployment_chain
from alien.protocol.http_exchange import RequestHead, iterate_once
from support.api import ApiClient
from support.databases import DATABASES, database_for
from support.manager import ManagerProcess
from support.names import unique

CALLERS = [
    "none",
    "admin",
    "operator",
    "debugger",
    "viewer",
    "group",
    "deployment",
    "own_session",
    "other_session",
    "ended_session",
    "garbage",
]
UNAUTHENTICATED = {"none", "garbage", "ended_session"}
READERS = frozenset({"admin", "operator", "debugger"})
REFUSAL_CODES = {401: "UNAUTHENTICATED", 403: "FORBIDDEN", 404: "NOT_FOUND"}


@dataclass
class World:
    manager: ManagerProcess
    moto: MotoServer
    admin: ApiClient
    anonymous: ApiClient
    group: str
    ref: str
    tokens: dict[str, str | None]
    keys: dict[str, str]
    session_id: str

    def open_session(self, role: str = "debugger") -> tuple[str, str]:
        """A fresh session opened by ``role``: (id, token)."""
        response = self.anonymous.post(
            "/v1/debug-sessions",
            json={"deployment": self.ref, "reason": "matrix"},
            headers={"Authorization": f"Bearer {self.keys[role]}"},
        )
        assert response.status_code == 201, response.text
        body = response.json()
        return body["id"], body["token"]


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    json: Any = None
    own_session: str | None = None  # the token of the session this call is about


@dataclass(frozen=True)
class Row:
    name: str
    allow: frozenset[str]
    ok: int
    call: Callable[[World], Call]
    websocket: bool = False
    not_found: frozenset[str] = frozenset()
    """Callers refused as if the resource did not exist (404): a token bound to another
    deployment or session must not learn that this one exists."""


def _own(w: World, path: str) -> Call:
    return Call("GET", path.format(s=w.session_id), own_session=w.tokens["own_session"])


def _fresh(method: str, suffix: str, body: Any = None) -> Callable[[World], Call]:
    def make(w: World) -> Call:
        session_id, token = w.open_session()
        return Call(method, f"/v1/debug-sessions/{session_id}{suffix}", body, own_session=token)

    return make


ROWS = [
    Row(
        "register aws",
        frozenset({"admin"}),
        201,
        lambda w: Call(
            "POST",
            "/v1/aws-deployments",
            {
                "group": w.group,
                "name": unique("reg"),
                "region": "eu-west-1",
                "role_arn": w.moto.role_arn,
                "allowed_services": ["s3"],
            },
        ),
    ),
    Row(
        "get aws config",
        READERS | {"viewer"},
        200,
        lambda w: Call("GET", f"/v1/aws-deployments/{w.ref}"),
        not_found=frozenset({"deployment"}),
    ),
    Row(
        "get policy",
        READERS | {"viewer"},
        200,
        lambda w: Call("GET", f"/v1/debug-policies/{w.ref}"),
    ),
    Row(
        "set policy",
        frozenset({"admin"}),
        200,
        lambda w: Call("PUT", f"/v1/debug-policies/{w.ref}", {"mode": "allowed"}),
    ),
    Row(
        "open session",
        frozenset({"admin", "debugger"}),
        201,
        lambda w: Call("POST", "/v1/debug-sessions", {"deployment": w.ref, "reason": "x"}),
    ),
    Row("list sessions", READERS, 200, lambda w: Call("GET", "/v1/debug-sessions")),
    Row(
        "get session",
        READERS | {"own_session"},
        200,
        lambda w: _own(w, "/v1/debug-sessions/{s}"),
        not_found=frozenset({"other_session"}),
    ),
    Row(
        "wait session",
        READERS | {"own_session"},
        200,
        lambda w: _own(w, "/v1/debug-sessions/{s}/wait?known=pending_approval&timeout=0"),
        not_found=frozenset({"other_session"}),
    ),
    Row(
        "session requests",
        READERS | {"own_session"},
        200,
        lambda w: _own(w, "/v1/debug-sessions/{s}/requests"),
        not_found=frozenset({"other_session"}),
    ),
    Row(
        "close session",
        frozenset({"admin", "debugger", "own_session"}),
        200,
        _fresh("POST", "/close", {"exit_code": 0}),
        not_found=frozenset({"other_session"}),
    ),
    Row("revoke session", frozenset({"admin"}), 200, _fresh("POST", "/revoke", {})),
    Row("audit", frozenset({"admin", "operator"}), 200, lambda w: Call("GET", "/v1/audit")),
    Row("tunnel", frozenset({"own_session"}), 101, _fresh("GET", "/tunnel"), websocket=True),
]


def _key(admin: ApiClient, role: str) -> str:
    response = admin.post("/v1/api-keys", json={"name": role, "role": role})
    assert response.status_code == 201, response.text
    return response.json()["key"]


@pytest.fixture(scope="module", params=DATABASES)
def world(
    request: pytest.FixtureRequest, moto: MotoServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    from dbg_world import manager_env

    with database_for(request.param) as url:
        manager = ManagerProcess(
            tmp_path_factory.mktemp("matrix"), database_url=url, extra_env=manager_env(moto)
        )
        manager.start()
        admin = manager.client()
        group = unique("grp")
        admin.create_group(group)
        name = unique("acme")
        register_aws(admin, moto, group, name)
        onboarded = admin.onboard(admin.create_group_token(group), unique("local"))
        keys = {role: _key(admin, role) for role in ("operator", "debugger", "viewer")}
        keys["admin"] = manager.admin_key
        w = World(
            manager=manager,
            moto=moto,
            admin=admin,
            anonymous=manager.client(token=""),
            group=group,
            ref=f"{group}/{name}",
            tokens={},
            keys=keys,
            session_id="",
        )
        w.session_id, own = w.open_session()
        _, other = w.open_session("admin")
        ended_id, ended = w.open_session()
        closed = admin.post(f"/v1/debug-sessions/{ended_id}/close", json={"exit_code": 0})
        assert closed.status_code == 200, closed.text
        w.tokens = {
            "none": None,
            **keys,
            "group": admin.create_group_token(group),
            "deployment": onboarded["token"],
            "own_session": own,
            "other_session": other,
            "ended_session": ended,
            "garbage": "ax_dbg_0123456789abcdef_" + "x" * 43,
        }
        yield w
        w.anonymous.close()
        admin.close()
        manager.stop()


def _http(w: World, call: Call, token: str | None) -> tuple[int, dict[str, Any] | None]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = w.anonymous.request(call.method, call.path, json=call.json, headers=headers)
    is_json = response.headers.get("content-type", "").startswith("application/json")
    return response.status_code, response.json() if is_json else None


def _websocket(w: World, call: Call, token: str | None) -> tuple[int, dict[str, Any] | None]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with connect(w.manager.ws_url + call.path, additional_headers=headers, open_timeout=10):
            return 101, None
    except InvalidStatus as exc:
        return exc.response.status_code, json.loads(exc.response.body or b"null")


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.name)
def test_debug_token_matrix(world: World, row: Row, caller: str) -> None:
    call = row.call(world)
    token = world.tokens[caller]
    if caller == "own_session" and call.own_session is not None:
        token = call.own_session
    status, body = (_websocket if row.websocket else _http)(world, call, token)
    if caller in row.allow:
        assert status == row.ok, (row.name, caller, status, body)
        return
    expected = 401 if caller in UNAUTHENTICATED else 404 if caller in row.not_found else 403
    assert status == expected, (row.name, caller, status, body)
    assert body is not None and body["error"]["code"] == REFUSAL_CODES[expected]


def test_every_debugging_route_has_a_row(world: World) -> None:
    spec = world.admin.get("/openapi.json").json()
    ours = {
        (method.upper(), path)
        for path, ops in spec["paths"].items()
        for method in ops
        if path.startswith(("/v1/debug", "/v1/aws-deployments")) or path == "/v1/audit"
    }
    # The WebSocket tunnel is not in OpenAPI. The other /v1/audit/* routes (head, public key)
    # belong to governance and are covered by tests/governance/test_authz_matrix.py.
    assert len(ours) == len(ROWS) - 1


def test_a_session_expires_at_its_ttl_and_the_expiry_is_audited(world: World) -> None:
    """No tunnel needed: the wait wakes at the expiry time, and the expiry is written down."""
    opened = world.admin.post(
        "/v1/debug-sessions", json={"deployment": world.ref, "reason": "ttl", "ttl_seconds": 1}
    )
    assert opened.status_code == 201, opened.text
    session_id = opened.json()["id"]
    waited = world.admin.get(
        f"/v1/debug-sessions/{session_id}/wait", params={"known": "active", "timeout": 10}
    )
    assert waited.status_code == 200 and waited.json()["state"] == "expired"
    listed = world.admin.get("/v1/debug-sessions", params={"state": "expired"}).json()["items"]
    assert session_id in {s["id"] for s in listed}
    ends = world.admin.get(
        "/v1/audit", params={"target": session_id, "action": "debug.session.expire"}
    ).json()["items"]
    assert [(e["actor"]["kind"], e["details"]["state"]) for e in ends] == [("system", "expired")]
    token = opened.json()["token"]
    refused = world.anonymous.get(
        f"/v1/debug-sessions/{session_id}", headers={"Authorization": f"Bearer {token}"}
    )
    assert refused.status_code == 401


def test_the_audit_trail_is_a_sealed_chain_that_verifies(world: World) -> None:
    """Everything the tests above did is in one hash chain, signed with the manager's key."""
    records, after = [], 0
    while page := world.admin.get("/v1/audit", params={"after": after, "limit": 1000}).json()[
        "items"
    ]:
        records += page
        after = page[-1]["seq"]
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    key = (world.manager.data_dir / "audit-signing-key.pem").read_bytes()
    assert (world.manager.data_dir / "audit-signing-key.pem").stat().st_mode & 0o777 == 0o600
    verifier = Signer.from_pem(key).verifier
    report = verify_chain(records, verifier)
    assert report.ok, report.problems[:3]
    deployment_id = next(r["deployment_id"] for r in records if r["deployment_id"])
    own = [r for r in records if r["deployment_id"] == deployment_id]
    assert verify_deployment_chain(own, verifier, deployment_id).ok
    tampered = [dict(r) for r in records]
    tampered[1]["details"] = {**tampered[1]["details"], "reason": "edited"}
    assert not verify_chain(tampered, verifier).ok


async def test_requests_through_the_tunnel_are_audited_on_this_database(world: World) -> None:
    """The CLI's tunnel client, in process: one signed STS call through the manager."""
    config = ClientConfig.resolve(world.manager.url, world.manager.admin_key, env={})
    async with AsyncManagerClient(config) as client:
        session = await DebugSession.open(client, world.ref, "db check", None)
        await session.connect()
        request = AWSRequest(
            method="POST",
            url="http://127.0.0.1:1/",
            data=b"Action=GetCallerIdentity&Version=2011-06-15",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        SigV4Auth(Credentials("ASIAALIENTEST0000000", "session-only"), "sts", "eu-west-1").add_auth(
            request
        )
        # As the CLI's proxy forwards it: verified, with the payload hash it computed.
        head = RequestHead.create("POST", "/", list(request.headers.items())).with_header(
            "x-amz-content-sha256", hashlib.sha256(request.body).hexdigest()
        )
        response = await session.upstream.send(head, iterate_once(request.body))
        body = b"".join([chunk async for chunk in response.body])
        await response.aclose()
        assert response.head.status == 200, body
        assert f"alien-debug-{session.id}".encode() in body
        await session.disconnect()
        closed = await session.close(0)
    assert closed.state == "closed"
    # The manager writes a request's record when its stream finishes on the server side, which
    # may be just after the client closed the session: the totals catch up within moments.
    deadline = time.monotonic() + 5
    while (totals := world.admin.get(f"/v1/debug-sessions/{session.id}").json())["requests"] < 1:
        assert time.monotonic() < deadline, totals
        await asyncio.sleep(0.05)
    assert totals["requests"] == 1 and totals["bytes_out"] == len(body)
    [record] = world.admin.get(f"/v1/debug-sessions/{session.id}/requests").json()["items"]
    assert record["target"] == "sts:GetCallerIdentity" and record["outcome"] == "succeeded"
