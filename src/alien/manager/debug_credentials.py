"""The assumed-role credentials of push-model debug tunnels, made ready when a session is granted.

A push-model tunnel re-signs with credentials of the deployment's role, from STS ``AssumeRole``
(a boto3 client plus a round trip to STS). Started at the tunnel's handshake, that sat in front
of every ``alien debug``; started when the session is granted, it runs while the CLI is still
setting up (the answer travelling back, its tunnel dial), and the handshake picks the result up.

What does not change: credentials are per session (``RoleSessionName=alien-debug-<dbg id>``)
and only handed to the tunnel of that session, after the handshake was authenticated and the
session found active; a warmed provider whose role, region or endpoint no longer match the
deployment's configuration at the handshake is thrown away. One that is not claimed within
:data:`HOLD_SECONDS` (the CLI never dialled, the session was refused at the handshake) is
stopped and forgotten. Like live tunnels, they live in the memory of one manager process.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import State

from alien.errors import AlienError
from alien.manager.models import AwsDeploymentConfig
from alien.platforms.aws.credential_operations import SESSION_POLICY
from alien.platforms.aws.credentials import AssumeRoleCredentialProvider, role_session_name
from alien.platforms.aws.endpoints import load_endpoint_data

HOLD_SECONDS = 30.0
"""How long warmed credentials wait for their session's tunnel."""


@dataclass(frozen=True)
class RoleTarget:
    """Which role a session's tunnel assumes, as whom and through which STS endpoint."""

    role_arn: str
    session_name: str
    region: str
    endpoint_url: str | None
    external_id: str | None

    @classmethod
    def of(cls, session_id: str, config: AwsDeploymentConfig) -> RoleTarget:
        return cls(
            role_arn=config.role_arn,
            session_name=role_session_name(session_id),
            region=config.region,
            endpoint_url=config.endpoint_url,
            external_id=config.external_id,
        )

    def provider(self) -> AssumeRoleCredentialProvider:
        """The provider for this role, with the manager's own AWS identity (boto3's default
        chain). Call it in a thread: creating a boto3 client reads files."""
        return AssumeRoleCredentialProvider(
            self.role_arn,
            self.session_name,
            region=self.region,
            endpoint_url=self.endpoint_url,
            external_id=self.external_id,
            policy=SESSION_POLICY,  # no credentials minted that would outlive the session
        )


async def started(target: RoleTarget) -> AssumeRoleCredentialProvider:
    """A provider for ``target`` holding its first credentials and refreshing ahead of expiry
    (errors surface here, e.g. ``PlatformError`` when STS refuses)."""
    provider = await run_in_threadpool(_provider_and_routes, target)
    try:
        await provider.start()
    except BaseException:
        await provider.aclose()
        raise
    return provider


def _provider_and_routes(target: RoleTarget) -> AssumeRoleCredentialProvider:
    """The provider, and the endpoint data the session's first request is routed with."""
    load_endpoint_data()
    return target.provider()


@dataclass
class _Warm:
    target: RoleTarget
    task: asyncio.Task[AssumeRoleCredentialProvider]
    timer: asyncio.TimerHandle


class WarmCredentials:
    """Providers started for granted sessions, each waiting (a while) for its tunnel."""

    def __init__(self, hold: float = HOLD_SECONDS) -> None:
        self._hold = hold
        self._warm: dict[str, _Warm] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def warm(self, session_id: str, target: RoleTarget) -> None:
        """Start assuming ``target`` for ``session_id`` now (on the running loop)."""
        loop = asyncio.get_running_loop()
        self.forget(session_id)
        task = loop.create_task(started(target), name=f"warm-credentials-{session_id}")
        timer = loop.call_later(self._hold, self.forget, session_id)
        self._warm[session_id] = _Warm(target, task, timer)

    async def take(self, session_id: str, target: RoleTarget) -> AssumeRoleCredentialProvider:
        """The started provider for the session's tunnel: the warmed one if it was made for
        ``target`` and succeeded, else a fresh one."""
        warm = self._warm.pop(session_id, None)
        if warm is not None:
            warm.timer.cancel()
            if warm.target == target:
                with contextlib.suppress(AlienError):  # a failed warm-up is tried once more
                    return await warm.task
            else:
                self._discard(warm)
        return await started(target)

    def forget(self, session_id: str) -> None:
        """Stop and drop what was warmed for ``session_id`` (unclaimed, or refused)."""
        warm = self._warm.pop(session_id, None)
        if warm is not None:
            self._discard(warm)

    def _discard(self, warm: _Warm) -> None:
        warm.timer.cancel()
        if not warm.task.done():
            warm.task.cancel()  # not started yet: nothing refreshes
        elif not warm.task.cancelled() and warm.task.exception() is None:
            closing = asyncio.ensure_future(warm.task.result().aclose())
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)


def warm_credentials(state: State) -> WarmCredentials:
    """This process's :class:`WarmCredentials` (kept on the app's state)."""
    warm = getattr(state, "debug_warm_credentials", None)
    if warm is None:
        warm = state.debug_warm_credentials = WarmCredentials()
    return warm
