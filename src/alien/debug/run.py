"""``alien debug``, end to end: session → tunnel → loopback proxy → child → close → clean up.

Order matters and is the point of this module:

1. open the session with the engineer's API key; wait while it awaits approval;
2. only once it is granted: connect its tunnel, create the private session directory, start the
   local endpoints (:mod:`alien.debug.endpoints`: the loopback AWS endpoint, which accepts only
   requests signed with this session's dummy keys, and — pull model, when the agent offers
   it — the HTTP forward proxy) and build the child's environment (``aws`` itself is run
   through ``aws_command``). A deployment with a push-model AWS configuration is debugged
   through the manager, any other through its agent;
3. run the command — or an interactive shell — and wait for whichever comes first: it exits,
   the session ends under it (revoked, expired: the manager drops the tunnel within a second),
   or ``alien debug`` is interrupted (SIGINT, SIGTERM, SIGHUP);
4. stop the child if it still runs, stop the proxy, close the tunnel, close the session
   reporting the exit status, remove the directory — on every path, failures included.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from alien.client.config import ClientConfig
from alien.client.lite import LiteClient
from alien.debug import session_calls
from alien.debug.child import Child, ChildCommand, shell_command
from alien.debug.endpoints import Endpoints, pull_endpoints, push_endpoints
from alien.debug.env import ChildEnv, aws_command
from alien.debug.expiry import remind
from alien.debug.session import DebugSession, SessionEnded
from alien.debug.session_calls import DebugSessionInfo, PushTarget
from alien.debug.session_dir import SessionDir
from alien.debug.session_keys import SessionKeys
from alien.errors import AlienError, NotFound
from alien.platforms.aws.sigv4 import load_signer

EXIT_SESSION_ENDED = 4
"""``alien debug``'s status when the session ended under the command (revoked, expired)."""

SESSION_ENV = "ALIEN_DEBUG_SESSION"
DEPLOYMENT_ENV = "ALIEN_DEBUG_DEPLOYMENT"
# The engineer's own manager credentials have no business in the debugged command.
_MANAGER_SECRETS = frozenset({"ALIEN_TOKEN", "ALIEN_API_KEY", "ALIEN_ADMIN_KEY"})
T = TypeVar("T")

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

Notify = Callable[[str], None]


@dataclass(frozen=True)
class DebugRun:
    """What ``alien debug`` was asked to do. An empty ``command`` means an interactive shell."""

    deployment: str
    reason: str
    command: list[str] = field(default_factory=list)
    ttl_seconds: int | None = None
    approval_timeout: float = 900.0


@dataclass
class RunResult:
    exit_code: int
    session: DebugSessionInfo | None = None
    ended: str | None = None
    """Why the command was stopped early (the session ended, or a signal), one line."""


def child_env(endpoints: Endpoints, session: DebugSession) -> ChildEnv:
    """The endpoints' environment (AWS CLI/SDK, HTTP proxy), plus who-am-I variables, minus the
    engineer's manager tokens."""
    marker = ChildEnv(
        set={SESSION_ENV: session.id, DEPLOYMENT_ENV: session.info.deployment},
        unset=_MANAGER_SECRETS,
    )
    return endpoints.env | marker


def child_command(
    run: DebugRun, files: SessionDir, aws_url: str | None, env: dict[str, str], label: str
) -> ChildCommand:
    if run.command:
        argv = aws_command(run.command, aws_url) if aws_url else list(run.command)
        return ChildCommand(argv, env, interactive=False)
    argv, extra = shell_command(files, label, env)
    return ChildCommand(argv, {**env, **extra}, interactive=True)


async def push_target(client: LiteClient, deployment_id: str) -> PushTarget | None:
    """The deployment's push-model AWS configuration; ``None``: it is debugged through its
    agent (pull model)."""
    try:
        return await client.call(session_calls.push_target(deployment_id))
    except NotFound:
        return None


async def _connect(client: LiteClient, session: DebugSession) -> PushTarget | None:
    """Connect the session's tunnel and, meanwhile, learn whether it is push or pull model
    (two independent round trips: the set-up waits for the longer, not for both)."""
    assert session.info.deployment_id is not None
    lookup = asyncio.create_task(push_target(client, session.info.deployment_id))
    try:
        await session.connect()
    except BaseException:
        lookup.cancel()
        with contextlib.suppress(asyncio.CancelledError, AlienError):
            await lookup
        raise
    return await lookup


@contextlib.contextmanager
def _stop_signals(loop: asyncio.AbstractEventLoop, stopped: asyncio.Future[int]) -> Iterator[None]:
    """While open, SIGINT/SIGTERM/SIGHUP resolve ``stopped`` (with the signal number) instead
    of killing us, so the session is closed and the directory removed on the way out."""

    def on_signal(signum: int) -> None:
        if not stopped.done():
            stopped.set_result(signum)

    installed = []
    try:
        for signum in _STOP_SIGNALS:
            loop.add_signal_handler(signum, on_signal, signum)
            installed.append(signum)
        yield
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


async def _supervise(
    child: Child, session: DebugSession, stopped: asyncio.Future[int], notify: Notify
) -> RunResult:
    """Wait for the child, the session's end, or a stop signal; stop the child as needed.
    Meanwhile the engineer is reminded of the coming expiry (:mod:`alien.debug.expiry`)."""
    exited = asyncio.create_task(child.wait())
    ended = asyncio.create_task(session.watch())
    reminding = asyncio.create_task(remind(session.id, session.info.expires_at, notify))
    try:
        await asyncio.wait({exited, ended, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if exited.done():
            return RunResult(exit_code=exited.result())
        if stopped.done():
            signum = stopped.result()
            await child.stop(interrupt=signum == signal.SIGINT)
            name = signal.Signals(signum).name
            return RunResult(exit_code=128 + signum, ended=f"interrupted by {name}")
        await child.stop()
        return RunResult(exit_code=EXIT_SESSION_ENDED, ended=ended.result())
    finally:
        for task in (ended, reminding):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _run_granted(
    run: DebugRun, client: LiteClient, session: DebugSession, notify: Notify
) -> RunResult:
    aws = await _explained(session, _connect(client, session))
    session.notify = notify
    loop = asyncio.get_running_loop()
    stopped: asyncio.Future[int] = loop.create_future()
    with SessionDir.create(session.id) as files, _stop_signals(loop, stopped):
        keys = SessionKeys.generate()
        async with contextlib.AsyncExitStack() as stack:
            if aws is not None:
                made = push_endpoints(stack, session, files, keys, aws)
            else:
                made = pull_endpoints(stack, session, files, keys)
            endpoints = await _explained(session, made)
            env = child_env(endpoints, session).apply()
            command = child_command(run, files, endpoints.aws_url, env, session.info.deployment)
            notify(
                f"debug session {session.id} on {session.info.deployment}: "
                f"{endpoints.summary}, expires {session.info.expires_at:%H:%M:%S} UTC"
                + ("; leave the shell to end it" if command.interactive else "")
            )
            child = await Child.start(command)
            load_signer()  # needed from the command's first request on; loads as it starts
            return await _supervise(child, session, stopped, notify)


async def _explained(session: DebugSession, setting_up: Awaitable[T]) -> T:
    """``setting_up``'s result; if it fails because the session ended meanwhile (revoked while
    its tunnel was being set up: the tunnel ends, its first stream is refused), the error says
    so rather than what the tunnel did about it."""
    try:
        return await setting_up
    except AlienError:
        ended = await session.why_ended()
        if ended is None:
            raise
        raise SessionEnded(ended, field="session") from None


async def _approvers(client: LiteClient, session: DebugSession) -> str:
    """`` by the customer (alien-deploy approve dbg_…)`` for a session waiting for approval."""
    if session.info.state != "pending_approval":
        return ""
    try:
        parties = await client.call(session_calls.waiting_for(session.id))
    except AlienError:
        return ""
    how = {"customer": f"alien-deploy approve {session.id}", "vendor": "an approver's API key"}
    return " by " + " and ".join(f"the {p} ({how.get(p, p)})" for p in parties)


async def run_debug(config: ClientConfig, run: DebugRun, notify: Notify) -> RunResult:
    """Run one debug session as described in the module doc; never leaves it open.

    Errors before the command ran (refused, not approved in time, tunnel refused) propagate
    after the session was closed."""
    async with LiteClient(config) as client:
        session = await DebugSession.open(client, run.deployment, run.reason, run.ttl_seconds)
        result: RunResult | None = None
        try:
            who = await _approvers(client, session)
            await session.wait_until_granted(
                run.approval_timeout,
                on_wait=lambda info: notify(
                    f"debug session {info.id} is waiting for approval{who} (the debug policy "
                    f"of {info.deployment} requires it); Ctrl-C to give up"
                ),
            )
            result = await _run_granted(run, client, session, notify)
        finally:
            await session.disconnect()
            exit_code = result.exit_code if result is not None else None
            with contextlib.suppress(AlienError):
                closed = await session.close(exit_code)
                if result is not None:
                    result.session = closed
        assert result is not None  # _run_granted either returned or raised
        return result
