"""``LocalPlatform``: run a stack on this machine, in one isolated area.

The Python API that ``alien dev`` and the agent drive (all coroutines run on one event loop)::

    platform = LocalPlatform(Area("/var/lib/alien/dep_123"))
    status = await platform.apply(manifest, app_dir, "rel_42")   # provision + (re)start
    status = platform.status()                                    # health, pids, URLs
    await platform.stop()                                         # stop functions, keep data
    await platform.teardown()                                     # stop and delete the area

``apply`` is the one update path, for the first deployment, a release, and an ``alien dev``
reload alike. It is zero-downtime and all-or-nothing for functions:

1. resources are reconciled (lifecycles honoured, see ``provision``) and the release's code is
   staged in the area;
2. a new process is started for every function whose release or configuration changed, next to
   the old ones, and each must become ready;
3. if any fails, every new process is stopped, the old ones keep running untouched and
   ``PlatformError`` says why (the agent rolls back on it);
4. otherwise each public function's ingress switches to its new process, the new versions'
   command control endpoints are published (``run/control.json``), and the old processes drain
   their in-flight requests and are stopped gracefully — a command running on an old process
   finishes first (the runtime's graceful stop waits for it, up to the grace period).

Commands reach the *current* version of a function through ``control_endpoints()`` (this
process) or ``run/control.json`` (other processes); see ``alien.platforms.local.dispatch``.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Mapping
from pathlib import Path

from alien.errors import AlienError, PlatformError
from alien.platforms.local import provision, releases
from alien.platforms.local.area import Area, AreaLock, check_name
from alien.platforms.local.backoff import Backoff
from alien.platforms.local.control_file import Published, publish
from alien.platforms.local.endpoints import Endpoint
from alien.platforms.local.function_env import process_spec
from alien.platforms.local.ingress import Ingress
from alien.platforms.local.process import OutputSink, ProcessSpec
from alien.platforms.local.proxy import Backend
from alien.platforms.local.resources import function_bindings
from alien.platforms.local.state import AreaState, load_state, save_state
from alien.platforms.local.status import FunctionStatus, Status
from alien.platforms.local.supervisor import Supervised, Timeouts
from alien.stack.kinds import Ingress as IngressMode
from alien.stack.manifest import ManifestLike, as_manifest
from alien.stack.spec import FunctionSpec, Manifest

log = logging.getLogger(__name__)


def _public(fn: FunctionSpec) -> bool:
    return fn.config.ingress == IngressMode.PUBLIC


class LocalPlatform:
    """Resources, function processes and ingresses of one deployment on this machine.

    ``host`` is where ingresses listen: the only TCP ports there are (function processes serve on
    Unix sockets in ``run/``, or token-guarded loopback ports when the area's path is too long for
    a socket, see ``endpoints``).
    ``ports`` pins a public function's ingress port (``alien dev --port``); otherwise the port
    used last time (``state.json``) is reused when free, else a free one is picked. ``sink``
    receives every line functions print (their log files get them regardless).
    """

    def __init__(
        self,
        area: Area | str | Path,
        *,
        host: str = "127.0.0.1",
        ports: Mapping[str, int] | None = None,
        sink: OutputSink | None = None,
        timeouts: Timeouts | None = None,
        python: str = sys.executable,
    ) -> None:
        self.area = area if isinstance(area, Area) else Area(area)
        self.host = host
        self.ports = dict(ports or {})
        self.sink = sink
        self.timeouts = timeouts or Timeouts()
        self.python = python
        self._lock = asyncio.Lock()
        self._area_lock = AreaLock(self.area)
        self._manifest: Manifest | None = None
        self._warnings: list[str] = []
        self._functions: dict[str, Supervised] = {}
        self._ingresses: dict[str, Ingress] = {}
        self._publishing = asyncio.Lock()

    # --- resources ------------------------------------------------------------------------------

    def open(self) -> AreaState:
        """Create the area if needed and take its lock (``PlatformError`` if another process
        holds it); returns the recorded state. ``apply`` and ``provision`` do this themselves."""
        self.area.ensure()
        if not self._area_lock.held:
            self._area_lock.acquire()
            # Whatever is in run/ belongs to a platform process that is gone: stale sockets and
            # a control.json naming processes that no longer exist.
            for stale in self.area.run_dir.iterdir():
                self.area.remove(stale)
        return load_state(self.area.state_file)

    def provision(self, manifest: ManifestLike) -> Status:
        """Create/update the stack's resources only (no functions): the setup step."""
        parsed = as_manifest(manifest)
        state = self.open()
        reconciled = provision.reconcile(self.area, state, parsed)
        state.stack = parsed.name
        save_state(self.area.state_file, state)
        self._manifest, self._warnings = reconciled.manifest, reconciled.warnings
        return self.status()

    # --- apply ----------------------------------------------------------------------------------

    async def apply(self, manifest: ManifestLike, code_dir: str | Path, release_id: str) -> Status:
        """Make the area run ``release_id`` of ``manifest`` (see the module docstring)."""
        parsed = as_manifest(manifest)
        check_name(release_id, "release")
        async with self._lock:
            state = await asyncio.to_thread(self.open)
            reconciled = await asyncio.to_thread(provision.reconcile, self.area, state, parsed)
            state.stack = parsed.name
            await asyncio.to_thread(save_state, self.area.state_file, state)
            functions = reconciled.manifest.functions()
            await asyncio.to_thread(
                releases.stage, self.area, release_id, Path(code_dir), functions
            )
            await self._roll_out(reconciled.manifest, release_id, state)
            await asyncio.to_thread(provision.drop, self.area, state, reconciled.dropped)
            if state.release != release_id:
                state.previous_release, state.release = state.release, release_id
            await asyncio.to_thread(save_state, self.area.state_file, state)
            running = {sup.release for sup in self._functions.values()}
            keep = {r for r in (release_id, state.previous_release, *running) if r}
            await asyncio.to_thread(releases.prune, self.area, keep)
            self._manifest, self._warnings = reconciled.manifest, reconciled.warnings
            for warning in reconciled.warnings:
                log.warning("%s", warning)
            return self.status()

    async def _roll_out(self, manifest: Manifest, release: str, state: AreaState) -> None:
        """Steps 2-4 of the update: start new versions, switch, retire the old ones."""
        functions = manifest.functions()
        public = {fn.id for fn in functions if _public(fn)}
        changed = []
        for fn in functions:
            spec = self._spec(manifest, fn, release)
            if self._needs_new_version(fn, spec, release):
                changed.append((fn, spec))
        for function in sorted(public):
            await self._ensure_ingress(function, state)
        try:
            started = await self._start_versions(changed, release)
        except BaseException:
            # Ingresses opened for functions that never started would only answer 503.
            await self._close_ingresses(keep=set(self._functions), state=state)
            raise
        retiring = self._switch(started)
        wanted = {fn.id for fn in functions}
        retiring += [
            (self._functions.pop(f), None) for f in list(self._functions) if f not in wanted
        ]
        await self._publish_controls()
        await asyncio.gather(*(self._retire(sup, backend) for sup, backend in retiring))
        await self._close_ingresses(keep=public, state=state)

    def _spec(self, manifest: Manifest, fn: FunctionSpec, release: str) -> ProcessSpec:
        return process_spec(
            fn,
            function_bindings(self.area, manifest, fn),
            code_dir=releases.code_dir(self.area, release, fn),
            log_file=self.area.log_file(fn.id),
            run_dir=self.area.run_dir,
            python=self.python,
        )

    def _needs_new_version(self, fn: FunctionSpec, spec: ProcessSpec, release: str) -> bool:
        current = self._functions.get(fn.id)
        return current is None or current.release != release or current.spec != spec

    async def _start_versions(
        self, changed: list[tuple[FunctionSpec, ProcessSpec]], release: str
    ) -> list[tuple[FunctionSpec, Supervised, Endpoint | None]]:
        """Start all new versions; if any fails to get ready, stop the others and raise.

        Cancellation (Ctrl-C during an ``alien dev`` reload) also stops every new process: none
        may outlive the apply that started it without being tracked.
        """
        created: list[Supervised] = []

        async def start(
            fn: FunctionSpec, spec: ProcessSpec
        ) -> tuple[FunctionSpec, Supervised, Endpoint | None]:
            sup = Supervised(
                spec,
                release=release,
                on_ready=self._on_restart,
                on_exit=self._on_exit,
                sink=self.sink,
                backoff=Backoff(),
                timeouts=self.timeouts,
            )
            created.append(sup)
            http = await sup.start()
            if _public(fn) and http is None:
                raise PlatformError(
                    f"function {fn.id} is public but serves no HTTP app: make "
                    f"{fn.config.code.entrypoint} an ASGI app or call alien.serve(app)",
                    field=fn.id,
                )
            return fn, sup, http

        try:
            results = await asyncio.gather(
                *(start(fn, spec) for fn, spec in changed), return_exceptions=True
            )
        except BaseException:
            await asyncio.gather(*(sup.stop() for sup in created), return_exceptions=True)
            raise
        failed = [r for r in results if isinstance(r, BaseException)]
        if not failed:
            return [r for r in results if not isinstance(r, BaseException)]
        await asyncio.gather(*(sup.stop() for sup in created))
        for exc in failed:
            if not isinstance(exc, Exception):
                raise exc  # cancellation, KeyboardInterrupt: not a failed release
        first = failed[0]
        message = first.message if isinstance(first, AlienError) else str(first)
        raise PlatformError(
            f"release {release} was not applied, the previous version keeps running: {message}",
            field=first.field if isinstance(first, AlienError) else None,
            details={"release": release, "failures": [str(f) for f in failed]},
        ) from first

    def _switch(
        self, started: list[tuple[FunctionSpec, Supervised, Endpoint | None]]
    ) -> list[tuple[Supervised | None, Backend | None]]:
        """Make the new versions current (no await inside: all switch at the same instant)."""
        retiring: list[tuple[Supervised | None, Backend | None]] = []
        for fn, sup, http in started:
            previous = self._functions.get(fn.id)
            self._functions[fn.id] = sup
            ingress = self._ingresses.get(fn.id)
            old_backend = ingress.switch(Backend(http)) if ingress and http else None
            retiring.append((previous, old_backend))
        return retiring

    async def _retire(self, sup: Supervised | None, backend: Backend | None) -> None:
        """Let the old backend finish what it has in flight, then stop the old process."""
        if backend is not None:
            if not await backend.drain(self.timeouts.grace):
                log.warning(
                    "%s still had requests in flight after %ss", backend, self.timeouts.grace
                )
            await backend.aclose()
        if sup is not None:
            await sup.stop()

    async def _on_exit(self, sup: Supervised) -> None:
        """A current process died: stop routing to it and advertising it, before anything else.

        Its endpoints may outlive it for someone else: on the loopback fallback any local user
        can bind the freed port and would get the ingress's requests (the client's cookies, the
        http token) and ``alien dev command``'s (the control token). Requests wait in the proxy
        for the restarted process meanwhile (up to ``ProxyApp.unavailable_wait``).
        """
        if self._functions.get(sup.function) is not sup:
            return
        ingress = self._ingresses.get(sup.function)
        if ingress is not None and (dead := ingress.switch(None)) is not None:
            await dead.aclose()
        await self._publish_controls()  # without it: sup.control is None while it restarts

    async def _on_restart(self, sup: Supervised, http: Endpoint | None) -> None:
        """A crashed process came back on new sockets: follow it."""
        if self._functions.get(sup.function) is not sup:
            return
        await self._publish_controls()
        if http is None:
            return
        ingress = self._ingresses.get(sup.function)
        if ingress is not None:
            dead = ingress.switch(Backend(http))
            if dead is not None:
                await dead.aclose()

    # --- commands -------------------------------------------------------------------------------

    def control_endpoints(self) -> dict[str, Endpoint]:
        """Function id → the control endpoint of its current version (running, commands on)."""
        return {fid: sup.control for fid, sup in self._functions.items() if sup.control}

    async def _publish_controls(self) -> None:
        """Write ``run/control.json`` for other processes (``alien dev command``).

        Serialised, and the snapshot taken under the lock: two publishes in a row (a switch and
        a restart) can never land in the wrong order.
        """
        async with self._publishing:
            entries = {
                fid: Published(sup.control, sup.release, sup.pid)
                for fid, sup in self._functions.items()
                if sup.control is not None
            }
            await asyncio.to_thread(publish, self.area, entries)

    # --- ingress --------------------------------------------------------------------------------

    async def _ensure_ingress(self, function: str, state: AreaState) -> None:
        if function in self._ingresses:
            return
        pinned = self.ports.get(function)
        remembered = state.ingress_ports.get(function)
        ingress = Ingress(function, host=self.host, port=pinned or remembered or 0)
        try:
            await ingress.start()
        except PlatformError:
            if pinned is not None or not remembered:
                raise
            log.warning("port %s of %s is taken now; picking another", remembered, function)
            ingress = Ingress(function, host=self.host, port=0)
            await ingress.start()
        self._ingresses[function] = ingress
        state.ingress_ports[function] = ingress.port

    async def _close_ingresses(self, keep: set[str], state: AreaState | None = None) -> None:
        for function in [f for f in self._ingresses if f not in keep]:
            await self._ingresses.pop(function).close()
            if state is not None:
                state.ingress_ports.pop(function, None)

    # --- stop / teardown / status ---------------------------------------------------------------

    async def stop(self) -> None:
        """Stop every function and ingress gracefully; the area and its data stay."""
        async with self._lock:
            # Ingress first: no new requests are accepted while in-flight ones complete.
            await self._close_ingresses(keep=set())
            functions, self._functions = list(self._functions.values()), {}
            if self._area_lock.held:
                await self._publish_controls()  # nothing is current any more: the file goes
            await asyncio.gather(*(sup.stop() for sup in functions))
            self._area_lock.release()

    async def teardown(self) -> None:
        """Stop everything and delete the area with all its data.

        Refused (``PlatformError``) while another process runs this area: its functions would
        keep running on deleted files.
        """
        if self.area.root.exists():
            await asyncio.to_thread(self.open)
        await self.stop()
        await asyncio.to_thread(self.area.destroy)
        self._manifest, self._warnings = None, []

    @property
    def urls(self) -> dict[str, str]:
        """Public function id → its stable ingress URL."""
        return {fid: ingress.url for fid, ingress in sorted(self._ingresses.items())}

    def status(self) -> Status:
        state = load_state(self.area.state_file)
        return Status(
            stack=state.stack,
            release=state.release,
            resources=provision.monitor(self.area, state, self._manifest),
            functions=[
                FunctionStatus(
                    id=fid,
                    state=str(sup.state),
                    release=sup.release,
                    pid=sup.pid,
                    url=self._ingresses[fid].url if fid in self._ingresses else None,
                    restarts=sup.restarts,
                    last_exit=sup.last_exit,
                    last_error=sup.last_error,
                    control=sup.control.address if sup.control else None,
                )
                for fid, sup in sorted(self._functions.items())
            ],
            warnings=list(self._warnings),
        )
