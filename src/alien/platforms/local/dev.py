"""``alien dev``: run an app's stack on the local platform and reload it on every change.

A session loads ``alien_stack.py``, applies it to an area inside the app directory
(``.alien/dev/``), prints each public function's URL, then watches the app directory. Every
change (code or stack) becomes a new release applied through the platform's zero-downtime path,
so a request in flight during a reload is answered by the old version and the next one by the new.
A change that does not load or does not start is reported and the previous version keeps running.

:func:`invoke_command` is ``alien dev command``: it runs in its own process, finds the session's
functions through the area (``run/control.json``) and invokes a command on the current version.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watchfiles import Change, DefaultFilter, awatch

from alien.bindings.base import Vault
from alien.errors import AlienError, NotFound, PlatformError, ValidationError
from alien.platforms.dispatch import FUNCTION_UNAVAILABLE, Invocation, resolve_target
from alien.platforms.local.area import Area
from alien.platforms.local.control_file import AreaControls
from alien.platforms.local.dispatch import LocalDispatcher, direct_envelope
from alien.platforms.local.platform import LocalPlatform
from alien.platforms.local.process import OutputSink
from alien.platforms.local.resources import binding
from alien.stack.kinds import Ingress as IngressMode
from alien.stack.loader import load_stack
from alien.stack.spec import Manifest, VaultSpec

log = logging.getLogger(__name__)

DEV_AREA = Path(".alien") / "dev"
GITIGNORE = "# alien dev's local area: vault keys, data, logs. Never commit it.\n*\n"


def default_area(app_dir: Path) -> Path:
    return app_dir / DEV_AREA


def prepare_area(area: Area) -> None:
    """Create the dev area, kept out of version control.

    It lives inside the app directory, usually a repository, and holds vault keys beside the
    vaults they open, data and logs: a ``.gitignore`` of ``*`` in it keeps a ``git add .`` from
    committing any of that (as a virtualenv does).
    """
    area.ensure()
    ignore = area.inside(".gitignore")
    if not ignore.exists():
        ignore.write_text(GITIGNORE)


@dataclass(frozen=True)
class DevEvent:
    """Something the session reports: ``ready``, ``reloaded``, ``failed`` (or ``stopped``)."""

    kind: str
    release: str | None = None
    urls: dict[str, str] | None = None
    message: str | None = None
    seconds: float | None = None


Reporter = Callable[[DevEvent], None]


class ChangeFilter(DefaultFilter):
    """Changes worth a reload: anything in a function's code directory, and any ``.py`` file
    (``alien_stack.py`` and the helpers it imports). Not the area, and not other files in the
    app directory: ``alien dev > dev.log`` there must not reload on its own output forever.
    """

    def __init__(self, area: Path) -> None:
        super().__init__(
            ignore_dirs=(*DefaultFilter.ignore_dirs, ".alien"), ignore_paths=(str(area),)
        )
        self.code_dirs: tuple[Path, ...] = ()

    def __call__(self, change: Change, path: str) -> bool:
        if not super().__call__(change, path):
            return False
        return path.endswith(".py") or any(Path(path).is_relative_to(d) for d in self.code_dirs)


class SourcePaths:
    """Paths into a staged copy (``<area>/releases/<release>/api/app.py``) shown as the app's own
    (``<app>/api/app.py``), in function output and failure messages.

    A release runs from a copy of the app's code (:mod:`.releases`), so its tracebacks name the
    copy; a developer who clicks one would edit a file the next reload throws away. The copy
    mirrors the app directory, so the two paths differ by their prefix alone. Any release's:
    the previous version keeps serving (and failing) while a new one starts."""

    def __init__(self, area: Area, app_dir: Path) -> None:
        self._staged = re.compile(re.escape(f"{area.releases_dir}/") + r"[^/\s\"']+/")
        self._own = f"{app_dir}/"

    def __call__(self, text: str) -> str:
        return self._staged.sub(lambda _: self._own, text)


def _load(app_dir: Path) -> Manifest:
    return load_stack(app_dir).manifest()


class DevSession:
    """One ``alien dev`` run: apply, announce, watch, reload, and stop everything at the end."""

    def __init__(
        self,
        app_dir: Path,
        *,
        report: Reporter,
        sink: OutputSink | None = None,
        area: Path | None = None,
        port: int | None = None,
        quiet_ms: int = 100,
    ) -> None:
        self.app_dir = Path(app_dir).resolve()
        self.area = Area(area if area is not None else default_area(self.app_dir))
        self.report = report
        self.port = port
        self.quiet_ms = quiet_ms
        self.source_paths = SourcePaths(self.area, self.app_dir)
        self.platform = LocalPlatform(self.area, sink=self._own_paths(sink))
        self.filter = ChangeFilter(self.area.root)
        self._counter = itertools.count(1)
        self._started = time.strftime("%Y%m%dT%H%M%S", time.gmtime())

    def _own_paths(self, sink: OutputSink | None) -> OutputSink | None:
        if sink is None:
            return None
        return lambda function, line: sink(function, self.source_paths(line))

    def _release(self) -> str:
        # Unique across runs too: a release id names a staged copy of the code in the area.
        return f"dev-{self._started}-{next(self._counter)}"

    def _pin_ports(self, manifest: Manifest) -> None:
        if self.port is None:
            return
        functions = manifest.functions()
        public = sorted(f.id for f in functions if f.config.ingress == IngressMode.PUBLIC)
        self.platform.ports = {fid: self.port + i for i, fid in enumerate(public)}

    async def _apply(self, kind: str) -> None:
        started = time.monotonic()
        release = self._release()
        try:
            manifest = await asyncio.to_thread(_load, self.app_dir)
            self.filter.code_dirs = tuple(
                (self.app_dir / fn.config.code.src).resolve() for fn in manifest.functions()
            )
            self._pin_ports(manifest)
            status = await self.platform.apply(manifest, self.app_dir, release)
        except AlienError as exc:
            first_line = exc.message.partition("\n")[0]
            where = f" ({exc.field})" if exc.field and exc.field not in first_line else ""
            message = self.source_paths(f"{exc.message}{where}")
            self.report(DevEvent("failed", release=release, message=message))
            return
        self.report(
            DevEvent(
                kind,
                release=release,
                urls=status.urls,
                seconds=round(time.monotonic() - started, 3),
                message="; ".join(status.warnings) or None,
            )
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then stop every function (no process is left behind)."""
        await asyncio.to_thread(prepare_area, self.area)
        await asyncio.to_thread(self.platform.open)  # another `alien dev` here fails right away
        try:
            await self._apply_unless_stopped("ready", stop)
            async for _changes in awatch(
                self.app_dir,
                watch_filter=self.filter,
                stop_event=stop,
                step=self.quiet_ms,  # reload once the tree has been quiet this long
            ):
                if stop.is_set():
                    break
                await self._apply_unless_stopped("reloaded", stop)
        finally:
            await self.platform.stop()

    async def _apply_unless_stopped(self, kind: str, stop: asyncio.Event) -> None:
        """Apply, but give up at once on Ctrl-C (a start can take up to the ready timeout)."""
        applying = asyncio.create_task(self._apply(kind))
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({applying, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if applying.done():
            await applying
            return
        applying.cancel()  # the platform stops whatever the apply had started
        with contextlib.suppress(asyncio.CancelledError):
            await applying


def set_secret(app_dir: Path, vault: str, name: str, value: str, area: Path | None = None) -> None:
    """Store a secret in a vault of the dev area (``alien dev secret set``).

    Works while ``alien dev`` runs: the vault has its own file lock, and functions read it at
    each access, so the new value is visible to them at once.
    """
    app = Path(app_dir).resolve()
    manifest = _load(app)
    try:
        spec = manifest.resource(vault)
    except NotFound:
        vaults = ", ".join(v.id for v in manifest.of_kind("vault")) or "none"
        raise NotFound(
            f"stack {manifest.name} has no vault {vault!r}; vaults: {vaults}", field="vault"
        ) from None
    if not isinstance(spec, VaultSpec):
        raise ValidationError(f"{vault!r} is a {spec.kind}, not a vault", field="vault")
    dev_area = Area(area if area is not None else default_area(app))
    prepare_area(dev_area)
    with binding(dev_area, spec).open() as backend:
        assert isinstance(backend, Vault)
        backend.set_secret(name, value)


async def invoke_command(
    app_dir: Path,
    name: str,
    params: dict[str, Any],
    *,
    target: str | None = None,
    timeout: float = 300.0,
    area: Path | None = None,
) -> tuple[str, Invocation]:
    """Run command ``name`` in the app's running ``alien dev`` session; (function, answer).

    The function is ``target``, or the one function of the stack with commands enabled
    (``TARGET_REQUIRED``/``TARGET_AMBIGUOUS`` otherwise). ``FUNCTION_UNAVAILABLE`` when no
    session runs it. Handler failures are not raised: they are the answer's response.
    """
    app = Path(app_dir).resolve()
    function = resolve_target(await asyncio.to_thread(_load, app), target)
    envelope = direct_envelope(name, params, timeout=timeout)
    controls = AreaControls(Area(area if area is not None else default_area(app)))
    if not await asyncio.to_thread(controls.control_endpoints):
        raise PlatformError(
            f"no `alien dev` session is running in {app}: start one first",
            field="path",
            code=FUNCTION_UNAVAILABLE,
        )
    async with LocalDispatcher(controls) as dispatcher:
        return function, await dispatcher.invocation(function, envelope)
