"""The pull-model pieces in one process, over real tunnels on in-memory transports:

    CLI (TunnelUpstream / ForwardProxy) ⇄ manager (relay_to_agent, auditing) ⇄ agent
    (handle_stream: SessionUpstream, ForwardingUpstream, ConnectUpstream) → real HTTP(S) services

plus the protocol message, the agent's configuration file, the one-time credentials of the
agent's leg and the registry of agents that can be handed a ``tunnel_open``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import ssl
import string
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import botocore.session
import httpx
import pytest
from botocore.credentials import CredentialResolver
from hypothesis import given
from hypothesis import strategies as st
from targets import HELLO, Targets

from alien.agent.debug import AmbientCredentials, SessionUpstream, handle_stream
from alien.agent.debug_config import DebugConfig, load_config
from alien.agent.session_limits import narrowed
from alien.debug.endpoints import agent_offer
from alien.debug.forward_proxy import ForwardProxy
from alien.errors import Conflict, PlatformError, Unauthenticated, ValidationError
from alien.manager.api.agent import AgentPushers
from alien.manager.debug_audit import RequestRecorder
from alien.manager.debug_dials import AgentDials
from alien.manager.debug_tunnel import PullPlan, _agent_leg, relay_to_agent
from alien.manager.services.debug_sessions import RequestRecord
from alien.protocol.agent_channel import (
    CAPABILITY_DEBUG_LIMITS,
    CAPABILITY_DEBUG_SPLICE,
    CAPABILITY_DEBUG_TUNNELS,
    DebugLimits,
    TunnelOpen,
    encode,
    parse_manager_message,
)
from alien.protocol.audit import Outcome
from alien.protocol.http_exchange import RequestHead, iterate_once
from alien.tunnel import TunnelConnection, memory_pair
from alien.tunnel.forward import Resolver, system_resolver
from alien.tunnel.http import TunnelUpstream

TOKEN = "session-token-" + "x" * 20


# --- the chain ---------------------------------------------------------------------------------


class Chain:
    """CLI ⇄ manager ⇄ agent over memory transports; ``records`` is what the manager audited."""

    def __init__(self, config: DebugConfig, resolve: Resolver = system_resolver) -> None:
        self.records: list[RequestRecord] = []
        self.recorder = RequestRecorder(self.records.extend, max_delay=0.01)
        cli_t, manager_t = memory_pair()
        agent_side_t, agent_t = memory_pair()
        self.upstream = SessionUpstream(config, "dbg_test", resolve=resolve)
        self.agent = TunnelConnection(
            agent_t, "client", handler=partial(handle_stream, self.upstream)
        )
        self.agent_leg = TunnelConnection(agent_side_t, "server")
        self.manager = TunnelConnection(
            manager_t, "server", handler=partial(relay_to_agent, self.agent_leg, self.recorder)
        )
        self.cli = TunnelConnection(cli_t, "client")

    async def __aenter__(self) -> Chain:
        for connection in (self.agent, self.agent_leg, self.manager, self.cli):
            await connection.start()
        await self.recorder.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for connection in (self.cli, self.manager, self.agent_leg, self.agent):
            await connection.abort("test over")
        await self.recorder.aclose()
        await self.upstream.aclose()

    async def audited(self, count: int, timeout: float = 5.0) -> list[RequestRecord]:
        """The records, once ``count`` exchanges were audited (the manager records one when
        its relay ends, a moment after the client has its answer)."""
        async with asyncio.timeout(timeout):
            while True:
                await self.recorder.flush()
                if len(self.records) >= count:
                    return self.records
                await asyncio.sleep(0.01)


def _config(targets: Targets) -> DebugConfig:
    return DebugConfig.model_validate(
        {"http": {"allow": [targets.http.authority, targets.https.authority]}}
    )


@pytest.fixture
async def chain(targets: Targets) -> AsyncIterator[Chain]:
    async with Chain(_config(targets)) as chain:
        yield chain


async def _read(body: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in body])


async def test_the_cli_learns_what_the_agent_offers(chain: Chain, targets: Targets) -> None:
    offer = await agent_offer(chain.cli)
    assert offer.aws is None
    assert offer.http is not None and targets.http.authority in offer.http.allow
    assert await chain.audited(0) == []  # asking is not a request to anything


async def test_an_allowed_request_is_relayed_and_audited(chain: Chain, targets: Targets) -> None:
    url = targets.http.url("/hello")
    head = RequestHead.create("GET", url, [("host", targets.http.authority)])
    response = await TunnelUpstream(chain.cli).send(head, iterate_once(b""))
    try:
        assert response.head.status == 200 and await _read(response.body) == HELLO
    finally:
        await response.aclose()
    [record] = await chain.audited(1)
    assert (record.service, record.operation, record.status) == ("http", f"GET {url}", 200)
    assert record.outcome is Outcome.SUCCEEDED and record.bytes_out == len(HELLO)


async def test_a_refusal_is_marked_and_audited_as_denied(chain: Chain, targets: Targets) -> None:
    url = targets.outside.url("/hello?secret=never-logged")
    head = RequestHead.create("GET", url, [])
    response = await TunnelUpstream(chain.cli).send(head, iterate_once(b""))
    try:
        body = json.loads(await _read(response.body))
    finally:
        await response.aclose()
    assert response.head.status == 403 and response.head.get("alien-error") == body["error"]["code"]
    assert body["error"]["code"] == "DESTINATION_NOT_ALLOWED"
    [record] = await chain.audited(1)
    assert record.outcome is Outcome.DENIED and record.error == "DESTINATION_NOT_ALLOWED"
    assert "never-logged" not in record.operation  # the query string stays out of the audit


async def test_a_channel_the_agent_does_not_offer_is_refused(chain: Chain) -> None:
    head = RequestHead.create("GET", "/", [("authorization", "AWS4-HMAC-SHA256 …")])
    response = await TunnelUpstream(chain.cli).send(head, iterate_once(b""))
    try:
        assert response.head.status == 403
        assert b"offers no AWS access" in await _read(response.body)
    finally:
        await response.aclose()


# --- what an allowed name resolves to, and names that are no names ----------------------------


class Listener:
    """A TCP service on 127.0.0.1 that counts the connections it is given and echoes bytes."""

    def __init__(self) -> None:
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Listener:
        self.server = await asyncio.start_server(self._echo, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def _echo(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        writer.close()


async def _to_loopback(host: str, port: int) -> list[str]:
    """A vendor's DNS: every name of its zone points at the agent's own loopback."""
    return ["127.0.0.1"]


async def _answer(chain: Chain, method: str, target: str) -> tuple[int, str | None, bytes]:
    response = await TunnelUpstream(chain.cli).send(
        RequestHead.create(method, target, []), iterate_once(b"")
    )
    try:
        return response.head.status, response.head.get("alien-error"), await _read(response.body)
    finally:
        await response.aclose()


@pytest.mark.parametrize("method", ["GET", "CONNECT"])
async def test_an_allowed_name_resolving_to_loopback_is_refused_and_audited(method: str) -> None:
    async with Listener() as listener:
        authority = f"api.vendor.example:{listener.port}"
        config = DebugConfig.model_validate(
            {"http": {"allow": [f"*.vendor.example:{listener.port}"]}}
        )
        async with Chain(config, resolve=_to_loopback) as chain:
            target = authority if method == "CONNECT" else f"http://{authority}/latest/meta-data/"
            status, code, body = await _answer(chain, method, target)
            [record] = await chain.audited(1)
        assert (status, code) == (403, "DESTINATION_NOT_ALLOWED")
        assert b"resolves to 127.0.0.1" in body
        assert record.outcome is Outcome.DENIED and record.error == "DESTINATION_NOT_ALLOWED"
        assert listener.connections == 0


async def test_connect_to_an_entry_naming_the_address_reaches_it() -> None:
    async with Listener() as listener:
        authority = f"127.0.0.1:{listener.port}"
        config = DebugConfig.model_validate({"http": {"allow": [authority]}})
        async with Chain(config, resolve=_to_loopback) as chain:
            head = RequestHead.create("CONNECT", authority, [])
            response = await TunnelUpstream(chain.cli).send(head, iterate_once(b"ping"))
            try:
                assert response.head.status == 200 and await _read(response.body) == b"ping"
            finally:
                await response.aclose()
        assert listener.connections == 1


@pytest.mark.parametrize(
    ("method", "target", "field"),
    [
        ("GET", "http://xn--api-.vendor.example/", "host"),  # not valid IDNA
        ("CONNECT", "xn--api-.vendor.example:443", "target"),
        ("CONNECT", "b\u00fccher.vendor.example:443", "target"),  # not ASCII
        ("CONNECT", "api.vendor.example\t:443", "target"),
        ("CONNECT", "api.vendor.example", "target"),  # no port
        ("CONNECT", f"{'a' * 64}.vendor.example:443", "target"),  # a label DNS cannot hold
    ],
)
async def test_a_host_that_is_no_valid_name_is_refused_and_audited(
    method: str, target: str, field: str
) -> None:
    config = DebugConfig.model_validate({"http": {"allow": ["*.vendor.example"]}})
    async with Chain(config, resolve=_to_loopback) as chain:
        status, code, body = await _answer(chain, method, target)
        [record] = await chain.audited(1)
    assert (status, code) == (422, "VALIDATION_ERROR")
    assert json.loads(body)["error"]["field"] == field
    assert record.status == 422 and record.service == "http"


# --- the forward proxy, on the chain ---------------------------------------------------------


@pytest.fixture
async def proxy(chain: Chain) -> AsyncIterator[str]:
    async with ForwardProxy(TunnelUpstream(chain.cli), TOKEN) as forward:
        yield f"http://alien:{TOKEN}@{forward.host}:{forward.port}"


async def test_keep_alive_and_streamed_bodies_through_the_proxy(
    proxy: str, chain: Chain, targets: Targets
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b"z" * 100_000

    async with httpx.AsyncClient(proxy=proxy, trust_env=False) as client:
        first = await client.get(targets.http.url("/hello"))
        echoed = await client.post(targets.http.url("/echo"), content=chunks())  # chunked
        again = await client.get(targets.http.url("/hello"))
    assert first.content == again.content == HELLO
    assert echoed.text == f"{hashlib.sha256(b'z' * 800_000).hexdigest()} 800000"
    assert [r.status for r in await chain.audited(3)] == [200, 200, 200]


async def test_https_through_connect(proxy: str, targets: Targets, chain: Chain) -> None:
    assert targets.https.ca_file is not None
    verify = ssl.create_default_context(cafile=str(targets.https.ca_file))
    async with httpx.AsyncClient(proxy=proxy, verify=verify, trust_env=False) as client:
        answer = await client.get(targets.https.url("/hello"))
    assert answer.content == HELLO
    [record] = await chain.audited(1)
    assert record.operation == f"CONNECT {targets.https.authority}" and record.status == 200


async def test_the_proxy_refuses_without_the_token_or_in_origin_form(
    proxy: str, targets: Targets, chain: Chain
) -> None:
    bare = proxy.replace(f"alien:{TOKEN}@", "")
    async with httpx.AsyncClient(proxy=bare, trust_env=False) as client:
        refused = await client.get(targets.http.url("/hello"))
    assert refused.status_code == 407 and "proxy-authenticate" in refused.headers
    origin = proxy.replace(f"alien:{TOKEN}@", "")
    async with httpx.AsyncClient(base_url=origin, trust_env=False) as client:
        direct = await client.get("/hello", headers={"proxy-authorization": f"Bearer {TOKEN}"})
    assert direct.status_code == 400 and b"absolute-form" in direct.content
    assert await chain.audited(0) == []


# --- protocol, configuration, credentials, registry -------------------------------------------


def _open(**changes: object) -> dict[str, object]:
    message: dict[str, object] = {
        "v": 1,
        "type": "tunnel_open",
        "session_id": "dbg_01abc",
        "tunnel_path": "/v1/agent/debug-tunnels/dbg_01abc",
        "credential": "c" * 43,
        "expires_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
    }
    return {**message, **changes}


def test_tunnel_open_round_trips_and_hides_its_credential() -> None:
    message = parse_manager_message(_open())
    assert isinstance(message, TunnelOpen)
    assert "c" * 43 not in repr(message)
    assert parse_manager_message(encode(message)) == message


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"tunnel_path": "/v1/debug-sessions/dbg_01abc/tunnel"}, "tunnel_path"),
        ({"tunnel_path": "//evil.example/v1/agent/debug-tunnels/dbg_1"}, "tunnel_path"),
        ({"credential": "short"}, "credential"),
        ({"session_id": "dep_01abc"}, "session_id"),
        ({"tunnel_path": "/v1/agent/debug-tunnels/dbg_another"}, "tunnel_path"),
    ],
)
def test_tunnel_open_refuses_what_could_send_the_agent_elsewhere(
    changes: dict[str, object], field: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        parse_manager_message(_open(**changes))
    assert refused.value.field == field


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ("{", "debug"),
        ('{"aws": {"region": "eu-west-1", "allowed_services": []}}', "aws.allowed_services"),
        ('{"http": {"allow": ["bad host!"]}}', "allow.0"),
        ('{"ssh": {}}', "ssh"),
        ('{"gcp": {"project": "Bad", "allowed_apis": ["pubsub"]}}', "gcp.project"),
        ('{"gcp": {"project": "p", "allowed_apis": []}}', "gcp.allowed_apis"),
        (
            '{"gcp": {"project": "p", "allowed_apis": ["pubsub"],'
            ' "endpoints": {"storage": "http://127.0.0.1:1"}}}',
            "gcp.storage",
        ),
        (
            '{"gcp": {"project": "p", "allowed_apis": ["pubsub"],'
            ' "endpoints": {"pubsub": "http://127.0.0.1:1/v1"}}}',
            "gcp.endpoints.pubsub",
        ),
        (
            '{"gcp": {"project": "p", "allowed_apis": ["x"], "credentials": "adc"}}',
            "gcp.credentials",
        ),
        (
            '{"gcp": {"project": "p", "allowed_apis": ["x"], "credentials": "token_file"}}',
            "gcp.token_file",
        ),
        ('{"kubernetes": {}}', "kubernetes.server"),  # not in a cluster: say where it is
        (
            '{"kubernetes": {"server": "https://10.0.0.1:6443", "ca_file": "/nonexistent/ca"}}',
            "kubernetes.ca_file",
        ),
        ('{"kubernetes": {"server": "https://h", "namespace": "Bad_NS"}}', "kubernetes.namespace"),
        (
            '{"kubernetes": {"server": "https://h", "ca_file": "/etc/hostname"}}',
            "kubernetes.ca_file",
        ),
        ('{"azure": {"account": "Acme", "key_file": "/etc/hostname"}}', "azure.account"),
        ('{"azure": {"account": "acme"}}', "azure.key_file"),
        ('{"azure": {"account": "acme", "key_file": "/etc/hostname"}}', "azure.key_file"),
        (
            '{"azure": {"account": "acme", "key_file": "/etc/hostname",'
            ' "blob_endpoint": "ftp://h"}}',
            "azure.blob_endpoint",
        ),
    ],
)
def test_a_bad_debug_config_names_the_field(tmp_path: Path, content: str, field: str) -> None:
    path = tmp_path / "debug.json"
    path.write_text(content)
    with pytest.raises(ValidationError) as refused:
        load_config(path)
    assert refused.value.field == field


async def test_an_agent_credential_is_one_time_and_bound_to_its_deployment() -> None:
    dials = AgentDials()
    credential, dial = dials.expect("dbg_1", "dep_1")
    with pytest.raises(Unauthenticated):
        dials.claim("dbg_1", "dep_other", credential)
    with pytest.raises(Unauthenticated):
        dials.claim("dbg_1", "dep_1", credential[:-1] + "x")
    with pytest.raises(Unauthenticated):
        dials.claim("dbg_2", "dep_1", credential)
    assert dials.claim("dbg_1", "dep_1", credential) is dial
    with pytest.raises(Unauthenticated):
        dials.claim("dbg_1", "dep_1", credential)  # used up


class _Pushers:
    """The agent registry's part ``_agent_leg`` uses: a connected agent listing ``listed``
    capabilities (besides ``debug_tunnels``)."""

    def __init__(self, *listed: str) -> None:
        self.listed = set(listed)
        self.sent: asyncio.Queue[TunnelOpen] = asyncio.Queue()

    def serves(self, deployment_id: str, capability: str) -> bool:
        return capability in self.listed

    async def send(self, deployment_id: str, capability: str, message: TunnelOpen) -> bool:
        self.sent.put_nowait(message)
        return True


UNLIMITED = DebugLimits(channels=("aws", "gcp", "kubernetes", "azure", "http"))


def _websocket(dials: AgentDials, pushers: _Pushers) -> Any:
    state = SimpleNamespace(debug_agent_dials=dials, agent_pushers=pushers)
    return SimpleNamespace(app=SimpleNamespace(state=state))


async def test_the_policys_limits_go_to_an_agent_that_applies_them_and_no_other() -> None:
    """An agent that cannot narrow a session (it predates ``debug_limits``) is not asked to
    serve one the deployment's policy narrows; one with no limits to apply still is."""
    limits = DebugLimits(channels=("aws", "http"), egress_allow=("db.internal:5432",))
    expires = datetime.now(UTC) + timedelta(hours=1)
    old = _Pushers()
    with pytest.raises(Conflict) as refused:
        await _agent_leg(_websocket(AgentDials(), old), PullPlan("dbg_1", "dep_1", expires, limits))
    assert refused.value.code == "DEBUG_AGENT_UNAVAILABLE" and "upgrade" in refused.value.message
    assert old.sent.empty()

    for pushers, plan, sent in (
        (_Pushers(CAPABILITY_DEBUG_LIMITS), PullPlan("dbg_2", "dep_1", expires, limits), limits),
        (_Pushers(), PullPlan("dbg_3", "dep_1", expires, UNLIMITED), None),
    ):
        handshake = asyncio.create_task(_agent_leg(_websocket(AgentDials(), pushers), plan))
        opened = await asyncio.wait_for(pushers.sent.get(), 5)
        assert opened.limits == sent
        handshake.cancel()
        with pytest.raises(asyncio.CancelledError):
            await handshake


def test_a_session_reaches_no_more_than_the_policy_leaves_of_debug_json() -> None:
    config = DebugConfig.model_validate(
        {
            "aws": {"region": "eu-west-1", "allowed_services": ["s3"]},
            "http": {"allow": ["*.internal:5432", "api.vendor.example"]},
            "kubernetes": {"server": "https://10.0.0.1", "ca_file": None},
            "azure": {"account": "acme", "key_file": "/run/secrets/acme-key"},
        }
    )
    assert narrowed(config, None) is config
    only = narrowed(
        config, DebugLimits(channels=("http", "gcp"), egress_allow=("db.internal:5432",))
    )
    assert (only.aws, only.kubernetes, only.gcp, only.azure) == (None, None, None, None)
    assert narrowed(config, DebugLimits(channels=("azure",))).azure == config.azure
    assert only.http is not None and only.http.allow == ("db.internal:5432",)
    none = narrowed(config, DebugLimits(channels=("aws", "http"), egress_allow=("x.io",)))
    assert none.http is None and none.aws == config.aws
    assert none.offer.http is None  # the CLI is not told of egress it cannot use


@pytest.mark.parametrize("splice", [True, False], ids=["spliced", "relayed"])
async def test_an_agent_leg_arriving_as_its_handshake_is_cancelled_is_closed(
    splice: bool,
) -> None:
    """The CLI left (or the server stops) just as the agent's leg came: nobody will use the
    leg, and it must not stay open until the session expires."""
    dials, pushers = AgentDials(), _Pushers(*([CAPABILITY_DEBUG_SPLICE] if splice else []))
    websocket = _websocket(dials, pushers)
    plan = PullPlan("dbg_1", "dep_1", datetime.now(UTC) + timedelta(hours=1), UNLIMITED)
    handshake = asyncio.create_task(_agent_leg(websocket, plan))  # type: ignore[arg-type]
    opened = await asyncio.wait_for(pushers.sent.get(), 5)
    dial = dials.claim("dbg_1", "dep_1", opened.credential)
    leg_t, agent_t = memory_pair()
    agent = TunnelConnection(agent_t, "client")
    leg = TunnelConnection(leg_t, "server")
    if not splice:
        await asyncio.gather(agent.start(), leg.start())
    dial.arrived.set_result(leg_t if splice else leg)  # as the leg's handler does
    handshake.cancel()  # in the same turn: the handshake never saw it
    with pytest.raises(asyncio.CancelledError):
        await handshake
    assert dial.released.is_set()  # a spliced leg's handler returns
    if not splice:
        await asyncio.wait_for(agent.wait_closed(), 5)  # the agent is told, and closes


async def test_tunnel_open_goes_to_the_newest_agent_that_serves_tunnels() -> None:
    pushers = AgentPushers()
    got: list[str] = []

    async def gone(message: object) -> None:
        raise RuntimeError("the socket closed")

    def sender(name: str) -> Callable[[object], Awaitable[None]]:
        async def send(message: object) -> None:
            got.append(name)

        return send

    leave_old = pushers.join("dep_1", [CAPABILITY_DEBUG_TUNNELS], sender("old"))
    pushers.join("dep_1", [], sender("no-capability"))
    pushers.join("dep_1", [CAPABILITY_DEBUG_TUNNELS], gone)
    message = parse_manager_message(_open())
    assert pushers.serves("dep_1", CAPABILITY_DEBUG_TUNNELS)
    assert await pushers.send("dep_1", CAPABILITY_DEBUG_TUNNELS, message)
    assert got == ["old"]  # the newest failed, the one without the capability was skipped
    leave_old()
    leave_old()
    assert not await pushers.send("dep_2", CAPABILITY_DEBUG_TUNNELS, message)


async def test_without_a_role_the_agent_signs_with_its_own_credentials() -> None:
    session = boto3.Session(aws_access_key_id="AKIAAGENT", aws_secret_access_key="agent-secret")
    credentials = await AmbientCredentials(session).get()
    assert (credentials.access_key_id, credentials.secret_access_key) == (
        "AKIAAGENT",
        "agent-secret",
    )
    assert "agent-secret" not in repr(credentials)
    empty_chain = botocore.session.Session()
    empty_chain.register_component("credential_provider", CredentialResolver(providers=[]))
    with pytest.raises(PlatformError):
        await AmbientCredentials(boto3.Session(botocore_session=empty_chain)).get()


_ID = st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=64)


@given(
    session=_ID,
    credential=st.text(
        alphabet=string.ascii_letters + string.digits + "-_", min_size=32, max_size=128
    ),
    offset=st.integers(min_value=-(10**6), max_value=10**8),
)
def test_every_well_formed_tunnel_open_round_trips(
    session: str, credential: str, offset: int
) -> None:
    message = TunnelOpen(
        session_id=f"dbg_{session}",
        tunnel_path=f"/v1/agent/debug-tunnels/dbg_{session}",
        credential=credential,
        expires_at=datetime.now(UTC) + timedelta(seconds=offset),
    )
    assert parse_manager_message(encode(message)) == message
    assert "credential" not in repr(message)


@given(path=st.text(max_size=80))
def test_no_other_tunnel_path_is_accepted(path: str) -> None:
    if re.fullmatch(r"/v1/agent/debug-tunnels/dbg_[A-Za-z0-9]{1,64}", path):
        return
    with pytest.raises(ValidationError):
        parse_manager_message(_open(tunnel_path=path))
