"""``alien.commands.CommandsClient`` (sync and asyncio) and fan-out, against the real manager
with test agents answering."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from agent_double import KNOWN_COMMANDS, CommandAgent, Deployment, echo, running_deployment

from alien.commands import CommandFailed, CommandsClient, FanOutResult
from alien.errors import AlienError, NotFound, ValidationError
from support.api import ApiClient
from support.manager import ManagerProcess
from support.names import unique


@pytest.fixture
def serving(commands_manager: ManagerProcess, deployment: Deployment) -> Iterator[CommandAgent]:
    with CommandAgent(commands_manager.ws_url, deployment.token) as agent:
        agent.serve(echo)
        yield agent


@pytest.fixture
def client(commands_manager: ManagerProcess, deployment: Deployment) -> Iterator[CommandsClient]:
    with CommandsClient(
        deployment=deployment.ref, token=commands_manager.admin_key, manager=commands_manager.url
    ) as made:
        yield made


def test_invoke_returns_the_result(client: CommandsClient, serving: CommandAgent) -> None:
    result = client.invoke("generate-report", {"start_date": "2025-01-01"})
    assert result == {
        "command": "generate-report",
        "params": {"start_date": "2025-01-01"},
        "attempt": 1,
    }


def test_invoke_async_returns_the_result(client: CommandsClient, serving: CommandAgent) -> None:
    async def both() -> list[object]:
        try:
            return list(
                await asyncio.gather(
                    client.invoke_async("echo", {"n": 1}), client.invoke_async("echo", {"n": 2})
                )
            )
        finally:
            await client.aclose()

    first, second = asyncio.run(both())
    assert first["params"] == {"n": 1} and second["params"] == {"n": 2}  # type: ignore[index]


def test_large_params_and_results_are_invisible_to_callers(
    client: CommandsClient, serving: CommandAgent
) -> None:
    big = {"rows": ["x" * 1000] * 400}  # about 400 KiB: by reference both ways
    result = client.invoke("echo", big)
    assert result["params"] == big
    listed = client.list(deployment=client.deployment, command="echo", limit=1)
    assert listed[0].params_ref is not None  # it did travel by reference


def test_failures_raise_with_their_code(client: CommandsClient, serving: CommandAgent) -> None:
    with pytest.raises(CommandFailed) as failed:
        client.invoke("fail")
    assert failed.value.code == "HANDLER_ERROR" and failed.value.command.state == "failed"
    with pytest.raises(ValidationError) as unknown:
        client.invoke("no-such-command")
    assert unknown.value.code == "UNKNOWN_COMMAND"
    assert unknown.value.details["known"] == sorted(KNOWN_COMMANDS["api"])
    with pytest.raises(NotFound):
        client.invoke("echo", deployment="nobody/nothing")


def test_a_command_nobody_answers_expires(client: CommandsClient) -> None:
    with pytest.raises(CommandFailed) as expired:
        client.invoke("echo", timeout=0.5)
    assert expired.value.code == "COMMAND_EXPIRED"


def test_submit_wait_get_cancel_list(client: CommandsClient, deployment: Deployment) -> None:
    submitted = client.submit("slow", {"a": 1}, idempotency_key=unique("key"))
    assert submitted.state == "pending" and not submitted.ended
    assert client.wait(submitted.id, timeout=0.1).state == "pending"
    cancelled = client.cancel(submitted.id, reason="changed my mind")
    assert cancelled.state == "cancelled" and cancelled.error is not None
    assert client.get(submitted.id).error.message == "changed my mind"  # type: ignore[union-attr]
    with pytest.raises(CommandFailed) as failed:
        client.result(client.get(submitted.id))
    assert failed.value.code == "COMMAND_CANCELLED"
    assert [c.id for c in client.list(deployment=deployment.ref, state=["cancelled"])] == [
        submitted.id
    ]


def test_client_refuses_bad_arguments_before_calling(commands_manager: ManagerProcess) -> None:
    with pytest.raises(ValidationError) as no_token:
        CommandsClient(manager=commands_manager.url, token="")
    assert no_token.value.field == "token"
    with CommandsClient(token=commands_manager.admin_key, manager=commands_manager.url) as client:
        with pytest.raises(ValidationError) as no_deployment:
            client.invoke("echo")
        assert no_deployment.value.field == "deployment"
        with pytest.raises(ValidationError):
            client.invoke("echo", [1, 2], deployment="x")  # type: ignore[arg-type]
        with pytest.raises(ValidationError):
            client.fan_out("echo", group="g", max_concurrency=0)


@pytest.fixture
def fleet(commands_manager: ManagerProcess, admin: ApiClient) -> Iterator[tuple[str, list[str]]]:
    """A group whose oldest deployment runs nothing (commands fail at once), then two that
    answer."""
    group = admin.create_group(unique("fleet"))["name"]
    idle = admin.onboard(admin.create_group_token(group), unique("idle"))["deployment"]
    working = [running_deployment(admin, commands=KNOWN_COMMANDS, group=group) for _ in range(2)]
    agents = [CommandAgent(commands_manager.ws_url, d.token) for d in working]
    for agent in agents:
        agent.serve(echo)
    try:
        yield group, [f"{group}/{idle['name']}", *(d.ref for d in working)]
    finally:
        for agent in agents:
            agent.close()


def test_fan_out_returns_per_deployment_results(
    commands_manager: ManagerProcess, fleet: tuple[str, list[str]]
) -> None:
    group, (idle, *working) = fleet
    with CommandsClient(token=commands_manager.admin_key, manager=commands_manager.url) as client:
        results = client.fan_out("echo", {"v": 1}, group=group, max_concurrency=2)
        assert set(results) == {idle, *working}
        assert all(results[ref].ok and results[ref].result["params"] == {"v": 1} for ref in working)
        assert not results[idle].ok and isinstance(results[idle].error, AlienError)
        assert results[idle].error.code == "NO_COMMAND_TARGET"  # type: ignore[union-attr]

        stopped = client.fan_out("echo", group=group, max_concurrency=1, max_errors=0)
        assert not stopped[idle].ok and not stopped[idle].skipped
        assert all(stopped[ref].skipped and not stopped[ref].ok for ref in working)

        async def run() -> dict[str, object]:
            try:
                return await client.fan_out_async("echo", group=group, max_concurrency=3)
            finally:
                await client.aclose()

        results_async = asyncio.run(run())
        assert [results_async[ref].ok for ref in working] == [True, True]  # type: ignore[attr-defined]
        for flavour in (results, results_async):
            for ref in working:
                _assert_names_its_command(client, flavour[ref], ref)  # type: ignore[arg-type]


def _assert_names_its_command(client: CommandsClient, outcome: FanOutResult, ref: str) -> None:
    """A success names the command it ran: a real ``cmd_…`` of that deployment that ended so."""
    assert outcome.command_id is not None and outcome.command_id.startswith("cmd_"), outcome
    ran = client.get(outcome.command_id)
    assert ran.state == "succeeded" and ran.result == outcome.result
    assert outcome.command_id in {c.id for c in client.list(deployment=ref)}
