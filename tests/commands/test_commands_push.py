"""Push dispatch: the manager invokes a locally running handler directly (``alien dev``).

The manager runs in this process (uvicorn on a thread, a real socket and SQLite) so a
:class:`DirectDispatcher` can be registered on its command center; the handlers are real SDK
handlers (``@alien.command``) run by ``alien.sdk.commands.run_command``. Leases, responses and
cancellation go through the same operations as an agent's messages.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from agent_double import create_command, running_deployment

from alien.manager import tokens
from alien.manager.app import create_app
from alien.manager.commands.center import CommandCenter
from alien.manager.commands.dispatch import DirectDispatcher
from alien.manager.server import bind, url_of
from alien.manager.settings import ManagerSettings
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


class InProcessManager:
    """The manager app served by uvicorn on a thread of this process."""

    def __init__(self, data_dir: Path) -> None:
        self.admin_key = tokens.issue(tokens.TokenKind.API_KEY).value
        self.app = create_app(ManagerSettings(data_dir=data_dir, admin_key=self.admin_key))
        self.center: CommandCenter = self.app.state.commands
        sock = bind("127.0.0.1", 0)
        self.url = url_of(sock)
        config = uvicorn.Config(self.app, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]})

    def __enter__(self) -> InProcessManager:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "the in-process manager did not start"
            time.sleep(0.01)
        return self

    def register(self, deployment_id: str, dispatcher: DirectDispatcher) -> int:
        """Register ``dispatcher`` on the manager's loop; the number of commands it was handed."""
        call = self.center.register_dispatcher(deployment_id, dispatcher)
        return asyncio.run_coroutine_threadsafe(call, self.center.loop).result(timeout=10)

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


@pytest.fixture(scope="module")
def in_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessManager]:
    with InProcessManager(tmp_path_factory.mktemp("in-process")) as manager:
        yield manager


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
