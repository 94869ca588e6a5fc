"""``Converger``: bring what runs here in line with what the manager wants, one step at a time.

Whenever something changes (a welcome, a pushed release, a refused report) it asks the protocol's
pure :func:`~alien.protocol.deployment.decide` what to do next, does it with the local platform and
reports each step (``provision_started`` … ``deploy_succeeded``) through the link:

* deploy: download + verify + unpack the package, ``LocalPlatform.apply`` it. The platform starts
  the new version next to the old one and switches only once every function is ready.
* a release that fails to start: the platform has kept the last good release serving, so the
  agent reports ``deploy_failed`` with the reason (the manager stores it; the deployment is
  ``update_failed`` and still runs the last good release). Only when nothing good runs here (say
  the agent restarted mid-update) does it report ``rollback_started`` and bring the last good
  release back explicitly (``rollback_succeeded`` / ``rollback_failed``).
* drift: the manager records release X as running but this machine runs something else (or
  nothing, e.g. the last good release could not be restored after a restart): X is deployed again.

Frozen resources are never modified by any of this: the platform only ever creates them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from alien.agent.link import ManagerLink
from alien.agent.packages import LocalRelease, PackageCache, ReleaseInfo
from alien.agent.state import AgentState, StateDir
from alien.client.errors import ManagerUnreachable
from alien.errors import AlienError
from alien.platforms.local.platform import LocalPlatform
from alien.platforms.local.status import Status
from alien.protocol.deployment import (
    ActionKind,
    ConvergeAction,
    Deleted,
    DeleteFailed,
    DeployFailed,
    DeploymentState,
    DeploymentStatus,
    DeployStarted,
    DeploySucceeded,
    Provisioned,
    ProvisionFailed,
    ProvisionStarted,
    RollbackFailed,
    RollbackStarted,
    RollbackSucceeded,
    decide,
)

log = logging.getLogger("alien.agent")

MAX_ERROR_CHARS = 4000
_RUNS_SOMETHING = frozenset({DeploymentState.RUNNING, DeploymentState.UPDATE_FAILED})

Announce = Callable[[str, Status], None]


def one_line(exc: BaseException) -> str:
    """An error as one bounded line: the head and the tail (where the exception is) survive."""
    text = exc.message if isinstance(exc, AlienError) else f"{type(exc).__name__}: {exc}"
    text = " ".join(text.split()) or type(exc).__name__
    if len(text) <= MAX_ERROR_CHARS:
        return text
    return text[:1000] + " … " + text[-(MAX_ERROR_CHARS - 1003) :]


class Converger:
    def __init__(
        self,
        link: ManagerLink,
        platform: LocalPlatform,
        packages: PackageCache,
        state_dir: StateDir,
        state: AgentState,
        *,
        announce: Announce,
    ) -> None:
        self.link = link
        self.platform = platform
        self.packages = packages
        self.dir = state_dir
        self.state = state
        self.announce = announce
        self.running: str | None = None
        """The release the platform runs now (``None``: nothing)."""
        self.deleted = asyncio.Event()

    # --- start-up --------------------------------------------------------------------------

    async def restore(self) -> None:
        """Bring back the last good release from disk, before (and without) the manager."""
        for release in (self.state.current_release, self.state.previous_release):
            if release is None or not self.packages.has(release):
                continue
            try:
                local = self.packages.load(release)
                status = await self.platform.apply(local.manifest, local.code_dir, release)
            except AlienError as exc:
                log.error("could not restore release %s: %s", release, one_line(exc))
                continue
            self.running = release
            self.announce(release, status)
            return

    # --- the loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            await self.link.changed.wait()
            self.link.changed.clear()
            status = self.link.mirror
            if status is None:
                continue
            action = self.next_action(status)
            if action.kind is ActionKind.IDLE:
                continue
            log.info("%s", action.reason)
            await self._perform(action)
            if self.link.mirror is not status:
                self.link.changed.set()  # progress: decide again right away

    def next_action(self, status: DeploymentStatus) -> ConvergeAction:
        action = decide(status)
        current = status.current_release
        if (
            action.kind is ActionKind.IDLE
            and status.state in _RUNS_SOMETHING
            and current is not None
            and current != self.running
        ):
            return ConvergeAction(
                kind=ActionKind.DEPLOY,
                release=current,
                reason=f"the manager records {current} as running here but "
                f"{self.running or 'nothing'} runs: deploying {current} again",
            )
        return action

    async def _perform(self, action: ConvergeAction) -> None:
        try:
            if action.kind is ActionKind.PROVISION:
                await self._provision(action.resume)
            elif action.kind is ActionKind.DEPLOY:
                assert action.release is not None
                await self._deploy(action.release, action.resume)
            elif action.kind is ActionKind.ROLLBACK:
                assert action.release is not None
                await self._rollback(action.release)
            elif action.kind is ActionKind.DELETE:
                await self._delete()
        except ManagerUnreachable as exc:
            # Could not fetch what we need: nothing is reported, the step is re-derived from the
            # manager's record once the link is back.
            log.warning("%s: %s", action.kind.value, exc.message)
        except Exception:  # a bug must not end the agent: what runs keeps serving
            log.exception("%s failed unexpectedly", action.kind.value)

    # --- steps -------------------------------------------------------------------------------

    async def _provision(self, resume: bool) -> None:
        if not resume and not await self.link.report(ProvisionStarted()):
            return
        try:
            await asyncio.to_thread(self.platform.open)
        except AlienError as exc:
            await self.link.report(ProvisionFailed(error=one_line(exc)))
            return
        await self.link.report(Provisioned())

    async def _deploy(self, release: str, resume: bool) -> None:
        if not resume and not await self.link.report(DeployStarted(release=release)):
            return
        try:
            await self._apply(release)
        except ManagerUnreachable:
            raise
        except Exception as exc:
            log.error("release %s failed: %s", release, one_line(exc))
            await self._deploy_failed(release, exc)
            return
        await self.link.report(DeploySucceeded(release=release))

    async def _deploy_failed(self, release: str, exc: Exception) -> None:
        status = self.link.mirror
        if status is None:
            return
        error = one_line(exc)
        if status.state is DeploymentState.UPDATING and status.current_release != self.running:
            # Nothing good runs here: bring the last good release back explicitly.
            await self.link.report(RollbackStarted(reason=f"release {release} failed: {error}"))
            return
        await self.link.report(DeployFailed(release=release, error=error))

    async def _rollback(self, release: str) -> None:
        try:
            await self._apply(release)
        except ManagerUnreachable:
            raise
        except Exception as exc:
            log.error("rollback to %s failed: %s", release, one_line(exc))
            await self.link.report(RollbackFailed(error=one_line(exc)))
            return
        await self.link.report(RollbackSucceeded(release=release))

    async def _delete(self) -> None:
        try:
            await self.platform.teardown()
        except AlienError as exc:
            await self.link.report(DeleteFailed(error=one_line(exc)))
            return
        self.running = None
        self.state.deleted = True
        self.state.current_release = self.state.previous_release = None
        self.dir.save(self.state)
        self.packages.prune(())
        await self.link.report(Deleted())
        log.info("the deployment was deleted; its area is torn down")
        self.deleted.set()

    # --- helpers -----------------------------------------------------------------------------

    async def _apply(self, release: str) -> Status:
        local = await self._fetch(release)
        status = await self.platform.apply(local.manifest, local.code_dir, release)
        self._ran(release)
        self.announce(release, status)
        return status

    async def _fetch(self, release: str) -> LocalRelease:
        if self.packages.has(release):
            return self.packages.load(release)
        info = self.link.offers.get(release)
        if info is None:
            found = await self.link.client.get_release(release)
            info = ReleaseInfo(
                release_id=found.id,
                manifest_digest=found.manifest_digest,
                package_digest=found.package_digest,
                package_size=found.package_size,
                package_url=f"/v1/releases/{found.id}/package",
            )
        return await self.packages.fetch(info, self.link.client)

    def _ran(self, release: str) -> None:
        """Record ``release`` as what runs here now (the last good one), keep its predecessor."""
        self.running = release
        if self.state.current_release != release:
            self.state.previous_release = self.state.current_release
            self.state.current_release = release
            self.dir.save(self.state)
        self.packages.prune((self.state.current_release, self.state.previous_release))
