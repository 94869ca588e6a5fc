"""Push dispatch: the manager invokes a locally running handler directly (``alien dev``).

The manager runs in this process (uvicorn on a thread, a real socket and SQLite) so a
:class:`DirectDispatcher` can be registered on its command center; the handlers are real SDK
handlers (``@alien.command``) run by ``alien.sdk.commands.run_command``. Leases, responses and
cancellation go through the same operations as an agent's messages.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from agent_double import create_command, running_deployment
from in_process import InProcessManager

from alien.manager.commands.dispatch import DirectDispatcher
from alien.protocol.agent_channel import CommandOffer
from alien.protocol.command_messages import CommandResponse
from alien.sdk.command_context import CommandContext
from alien.sdk.commands import command, run_command
from support.api import ApiClient

started_slow = threading.Event()


@command("push-echo")
def push_echo(word: str, ctx: CommandContext) -> dict[str, Any]:
    return {"word": word, "attempt": ctx.attempt}


@command("push-boom")
def push_boom() -> None:
    raise RuntimeError("kaboom")


@command("push-slow")
async def push_slow(ctx: CommandContext) -> str:
    started_slow.set()
    await ctx.wait_cancelled()
    return "stopped"


async def invoke_locally(offer: CommandOffer) -> CommandResponse:
    envelope = offer.envelope
    return await run_command(
        envelope.command, envelope.params, CommandContext.from_envelope(envelope)
    )


@pytest.fixture
def local(
    in_process: InProcessManager,
) -> Iterator[tuple[InProcessManager, ApiClient, DirectDispatcher, str]]:
    with ApiClient(in_process.url, in_process.admin_key) as admin:
        deployment = running_deployment(admin)
        dispatcher = DirectDispatcher(invoke_locally, base_url=in_process.url)
        in_process.register(deployment.id, dispatcher)
        yield in_process, admin, dispatcher, deployment.ref


def test_push_invokes_the_local_handler_and_stores_its_answer(local: Any) -> None:
    _, admin, _, ref = local
    done = create_command(admin, ref, "push-echo", params={"word": "hi"}, wait=10).json()
    assert done["state"] == "succeeded", done
    assert done["result"] == {"word": "hi", "attempt": 1}


def test_push_handler_errors_end_the_command_failed(local: Any) -> None:
    _, admin, _, ref = local
    failed = create_command(admin, ref, "push-boom", wait=10).json()
    assert failed["state"] == "failed" and failed["error"]["code"] == "HANDLER_ERROR"
    unknown = create_command(admin, ref, "push-nothing", wait=10).json()
    assert unknown["state"] == "failed" and unknown["error"]["code"] == "UNKNOWN_COMMAND"


def test_cancel_stops_the_local_handler(local: Any) -> None:
    _, admin, dispatcher, ref = local
    started_slow.clear()
    created = create_command(admin, ref, "push-slow").json()
    assert started_slow.wait(10)
    assert dispatcher.running == 1
    cancelled = admin.post(f"/v1/commands/{created['id']}/cancel").json()
    assert cancelled["state"] == "cancelled"
    deadline = time.monotonic() + 10
    while dispatcher.running:  # the task unwinds on the manager's loop
        assert time.monotonic() < deadline, "the local handler was not stopped"
        time.sleep(0.01)
    stored = admin.get(f"/v1/commands/{created['id']}").json()
    assert stored["state"] == "cancelled"  # the handler's late answer did not change it


def test_commands_waiting_before_the_dispatcher_came_are_handed_to_it(
    in_process: InProcessManager,
) -> None:
    manager = in_process
    with ApiClient(manager.url, manager.admin_key) as admin:
        deployment = running_deployment(admin)
        early = create_command(admin, deployment, "push-echo", params={"word": "early"}).json()
        assert early["state"] == "pending"  # nobody to run it yet
        handed = manager.register(
            deployment.id, DirectDispatcher(invoke_locally, base_url=manager.url)
        )
        assert handed == 1
        done = admin.get(f"/v1/commands/{early['id']}", params={"wait": 10}).json()
        assert done["state"] == "succeeded" and done["result"]["word"] == "early"
