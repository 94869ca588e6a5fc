"""The runtime's command control endpoint, served for real on a Unix socket in this process."""

from __future__ import annotations

import asyncio
import json
import stat
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

import alien
from alien.errors import ValidationError
from alien.protocol.command_messages import MAX_INLINE_BYTES, CommandResponse
from alien.sdk.runtime.address import parse_listen_address
from alien.sdk.runtime.config import EndpointConfig, RuntimeConfig
from alien.sdk.runtime.control import ControlServer
from alien.sdk.runtime.control_app import MAX_BODY_BYTES, RESULT_HEADER

TOKEN = "t0ken-" + "x" * 40
started = threading.Event()


def envelope(command: str, params: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    deadline = datetime.now(UTC) + timedelta(seconds=extra.pop("seconds", 30))
    return {
        "id": extra.pop("id", "cmd_1"),
        "deployment_id": "dep_1",
        "command": command,
        "params": params,
        "lease_id": "lse_1",
        "lease_expires_at": deadline.isoformat(),
        "attempt": 1,
        "max_attempts": 1,
        "deadline": deadline.isoformat(),
        "response_url": "http://localhost/unused",
        **extra,
    }


@pytest.fixture(autouse=True)
def handlers() -> None:
    """Registered per test: the SDK conftest clears the registry around each one."""
    started.clear()

    @alien.command("add")
    def add(a: int, b: int) -> int:
        return a + b

    @alien.command("greet")
    async def greet(name: str, ctx: alien.CommandContext) -> dict[str, Any]:
        return {"hello": name, "attempt": ctx.attempt}

    @alien.command("wait")
    async def wait(ctx: alien.CommandContext) -> str:
        started.set()
        await ctx.wait_cancelled()
        return "never reached: the runtime stops the handler"

    @alien.command("blob")
    def blob(size: int) -> str:
        return "b" * size

    @alien.command("boom")
    def boom() -> None:
        raise RuntimeError("it broke")


def control_at(address: str) -> EndpointConfig:
    return EndpointConfig(parse_listen_address(address, "ALIEN_CONTROL_ADDRESS"), TOKEN)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ControlServer]:
    control = ControlServer("api", control_at(f"unix:{tmp_path / 'control.sock'}"))
    await control.start()
    yield control
    await control.stop()


def client(server: ControlServer, token: str | None = TOKEN) -> httpx.AsyncClient:
    assert server.address.startswith("unix:")
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(
        transport=httpx.AsyncHTTPTransport(uds=server.address.removeprefix("unix:")),
        base_url="http://control",
        headers=headers,
        timeout=20,
    )


async def invoke(server: ControlServer, body: dict[str, Any]) -> httpx.Response:
    async with client(server) as http:
        return await http.post("/v1/commands/invoke", json=body)


async def response_of(server: ControlServer, body: dict[str, Any]) -> CommandResponse:
    reply = await invoke(server, body)
    assert reply.status_code == 200, reply.text
    return CommandResponse.model_validate_json(reply.content)


async def test_the_socket_is_private_and_removed_on_stop(tmp_path: Path) -> None:
    path = tmp_path / "c.sock"
    control = ControlServer("api", control_at(f"unix:{path}"))
    assert await control.start() == f"unix:{path}"
    mode = path.lstat().st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    await control.stop()
    assert not path.exists()


@pytest.mark.parametrize("token", [None, "wrong-" + "x" * 40, TOKEN + "x", TOKEN[:-1]])
async def test_calls_without_the_right_token_are_refused(
    server: ControlServer, token: str | None
) -> None:
    async with client(server, token) as http:
        for method, url in [
            ("GET", "/v1/commands"),
            ("POST", "/v1/commands/invoke"),
            ("POST", "/v1/commands/cmd_1/cancel"),
        ]:
            reply = await http.request(method, url, json={"envelope": envelope("add", {})})
            assert reply.status_code == 401
            assert reply.json()["error"] == {
                "code": "UNAUTHENTICATED",
                "message": "a valid control token is required",
                "field": "authorization",
            }
            assert TOKEN not in reply.text


async def test_a_basic_scheme_with_the_token_is_refused(server: ControlServer) -> None:
    async with client(server, token=None) as http:
        reply = await http.get("/v1/commands", headers={"authorization": f"Basic {TOKEN}"})
    assert reply.status_code == 401


async def test_sync_and_async_handlers_answer_with_their_response(server: ControlServer) -> None:
    added = await response_of(server, {"envelope": envelope("add", {"a": 2, "b": 3})})
    assert (added.ok, added.result, added.command_id, added.lease_id) == (
        True,
        5,
        "cmd_1",
        "lse_1",
    )
    greeted = await response_of(server, {"envelope": envelope("greet", {"name": "ada"})})
    assert greeted.result == {"hello": "ada", "attempt": 1}


async def test_handler_failures_and_bad_params_are_command_outcomes(
    server: ControlServer,
) -> None:
    failed = await response_of(server, {"envelope": envelope("boom", {})})
    assert failed.error is not None and failed.error.code == "HANDLER_ERROR"
    assert failed.error.message == "RuntimeError: it broke"
    assert "traceback" not in failed.error.details
    traced = await response_of(
        server, {"envelope": envelope("boom", {}), "include_traceback": True}
    )
    assert traced.error is not None and "it broke" in str(traced.error.details["traceback"])
    invalid = await response_of(server, {"envelope": envelope("add", {"a": "x", "b": 1})})
    assert invalid.error is not None and invalid.error.code == "INVALID_PARAMS"


async def test_an_unknown_command_lists_the_known_ones(server: ControlServer) -> None:
    unknown = await response_of(server, {"envelope": envelope("nope", {})})
    assert unknown.error is not None and unknown.error.code == "UNKNOWN_COMMAND"
    assert unknown.error.details["known"] == ["add", "blob", "boom", "greet", "wait"]
    async with client(server) as http:
        listed = (await http.get("/v1/commands")).json()
    assert listed == {
        "function": "api",
        "commands": ["add", "blob", "boom", "greet", "wait"],
        "running": [],
    }


async def test_a_running_command_is_listed_and_cancelled(server: ControlServer) -> None:
    running = asyncio.create_task(response_of(server, {"envelope": envelope("wait", {})}))
    assert await asyncio.to_thread(started.wait, 10)
    async with client(server) as http:
        assert (await http.get("/v1/commands")).json()["running"] == ["cmd_1"]
        again = await http.post("/v1/commands/invoke", json={"envelope": envelope("wait", {})})
        assert again.status_code == 409 and again.json()["error"]["code"] == "CONFLICT"
        assert (await http.post("/v1/commands/cmd_1/cancel")).json() == {"cancelled": True}
        response = await running
        assert response.error is not None and response.error.code == "COMMAND_CANCELLED"
        missing = await http.post("/v1/commands/cmd_1/cancel")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "COMMAND_NOT_FOUND"
        assert (await http.get("/v1/commands")).json()["running"] == []


async def test_a_caller_that_goes_away_cancels_the_handler(server: ControlServer) -> None:
    async with client(server) as http:
        call = asyncio.create_task(
            http.post("/v1/commands/invoke", json={"envelope": envelope("wait", {})})
        )
        assert await asyncio.to_thread(started.wait, 10)
        call.cancel()  # closes the connection mid-request
        with pytest.raises(asyncio.CancelledError):
            await call
    async with client(server) as http:
        for _ in range(200):  # the handler unwinds at once; bound the wait all the same
            if (await http.get("/v1/commands")).json()["running"] == []:
                break
            await asyncio.sleep(0.05)
        assert (await http.get("/v1/commands")).json()["running"] == []


async def test_a_result_over_the_inline_limit_comes_back_as_its_document(
    server: ControlServer,
) -> None:
    inline = await response_of(server, {"envelope": envelope("blob", {"size": 200_000})})
    assert inline.result == "b" * 200_000
    size = MAX_INLINE_BYTES + 10
    reply = await invoke(server, {"envelope": envelope("blob", {"size": size})})
    assert reply.status_code == 200
    assert reply.headers[RESULT_HEADER] == "document"
    assert (reply.headers["alien-command-id"], reply.headers["alien-lease-id"]) == (
        "cmd_1",
        "lse_1",
    )
    assert json.loads(reply.content) == "b" * size


async def test_params_resolved_from_a_params_ref_travel_beside_the_envelope(
    server: ControlServer,
) -> None:
    ref = {"url": "https://blobs.example/p", "size": 10, "sha256": "0" * 64}
    by_ref = envelope("add", None, params_ref=ref)
    resolved = await response_of(server, {"envelope": by_ref, "params": {"a": 40, "b": 2}})
    assert resolved.result == 42
    unresolved = await invoke(server, {"envelope": by_ref})
    assert unresolved.status_code == 422
    assert unresolved.json()["error"]["field"] == "params"
    both = await invoke(server, {"envelope": envelope("add", {"a": 1, "b": 1}), "params": {}})
    assert both.status_code == 422 and "once" in both.json()["error"]["message"]


async def test_malformed_and_oversized_bodies_are_refused(server: ControlServer) -> None:
    async with client(server) as http:
        bad = await http.post("/v1/commands/invoke", json={"envelope": {"id": "nope"}})
        assert bad.status_code == 422 and bad.json()["error"]["field"].startswith("envelope")
    # An oversized body is refused from its declared length, before any of it is read.
    reader, writer = await asyncio.open_unix_connection(server.address.removeprefix("unix:"))
    writer.write(
        b"POST /v1/commands/invoke HTTP/1.1\r\nHost: control\r\n"
        + f"Authorization: Bearer {TOKEN}\r\nContent-Length: {MAX_BODY_BYTES + 1}\r\n\r\n".encode()
    )
    await writer.drain()
    status = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    assert status.startswith(b"HTTP/1.1 413")


async def test_a_passed_deadline_is_a_timeout(server: ControlServer) -> None:
    late = envelope("add", {"a": 1, "b": 2}, seconds=0.01)
    await asyncio.sleep(0.05)
    response = await response_of(server, {"envelope": late})
    assert response.error is not None and response.error.code == "HANDLER_TIMEOUT"


def test_the_config_reads_the_control_address_and_keeps_the_token_out_of_repr() -> None:
    base = {"ALIEN_FUNCTION": "api", "ALIEN_ENTRYPOINT": "app:app", "ALIEN_COMMANDS_ENABLED": "1"}
    config = RuntimeConfig.from_environ(
        base | {"ALIEN_CONTROL_ADDRESS": "tcp:127.0.0.1:0", "ALIEN_CONTROL_TOKEN": TOKEN}
    )
    assert config.control is not None and config.control.token == TOKEN
    assert str(config.control.address) == "tcp:127.0.0.1:0"
    assert TOKEN not in repr(config)
    assert RuntimeConfig.from_environ(base).control is None  # commands arrive another way
    with pytest.raises(ValidationError, match="at least 32") as short:
        RuntimeConfig.from_environ(
            base | {"ALIEN_CONTROL_ADDRESS": "tcp:127.0.0.1:0", "ALIEN_CONTROL_TOKEN": "short"}
        )
    assert "short" not in short.value.message


@pytest.mark.parametrize(
    "value",
    ["unix:relative.sock", "tcp:10.0.0.1:80", "tcp:localhost:80", "tcp:127.0.0.1:99999", "x:y"],
)
def test_bad_control_addresses_are_refused(value: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_listen_address(value, "ALIEN_CONTROL_ADDRESS")
    assert info.value.field == "ALIEN_CONTROL_ADDRESS"


def test_a_socket_path_over_the_os_limit_is_refused() -> None:
    with pytest.raises(ValidationError, match="103 bytes"):
        parse_listen_address("unix:/" + "d" * 120 + "/c.sock", "ALIEN_CONTROL_ADDRESS")
    assert parse_listen_address("tcp:[::1]:0", "ALIEN_CONTROL_ADDRESS").host == "::1"


async def test_a_loopback_tcp_endpoint_reports_its_port() -> None:
    control = ControlServer("api", control_at("tcp:127.0.0.1:0"))
    address = await control.start()
    try:
        host, port = address.removeprefix("tcp:").rsplit(":", 1)
        assert host == "127.0.0.1" and int(port) > 0
        headers = {"authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}", headers=headers) as http:
            assert (await http.get("/v1/commands")).json()["function"] == "api"
    finally:
        await control.stop()
