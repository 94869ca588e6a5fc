"""``LocalDispatcher`` against a real ``LocalPlatform`` running real function processes."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import stat
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import alien
from alien.errors import PlatformError
from alien.platforms.local.area import Area
from alien.platforms.local.control_file import AreaControls
from alien.platforms.local.dispatch import LocalDispatcher, direct_envelope
from alien.platforms.local.endpoints import Endpoint
from alien.platforms.local.platform import LocalPlatform
from alien.platforms.local.supervisor import Timeouts
from alien.protocol.command_messages import MAX_INLINE_BYTES, BlobRef
from alien.stack.spec import Manifest

APP = textwrap.dedent(
    """
    import os
    from pathlib import Path
    import alien

    VERSION = {version!r}

    @alien.command("whoami")
    def whoami() -> dict:
        return {{"version": VERSION, "pid": os.getpid()}}

    @alien.command("hold")
    async def hold(marker: str, release: str, ctx: alien.CommandContext) -> dict:
        import asyncio
        Path(marker).write_text(str(os.getpid()))
        while not Path(release).exists():
            await asyncio.sleep(0.02)
        return {{"version": VERSION, "pid": os.getpid()}}

    @alien.command("big")
    def big() -> str:
        return "y" * {size}
    """
)


class Lines:
    """The platform's output sink: every line functions print, with a wait for one of them."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []
        self._changed = asyncio.Event()

    def __call__(self, function: str, line: str) -> None:
        self.lines.append((function, line))
        self._changed.set()

    async def wait_for(self, function: str, text: str, start: int = 0) -> None:
        async with asyncio.timeout(20):
            while not any(f == function and text in line for f, line in self.lines[start:]):
                self._changed.clear()
                await self._changed.wait()


def _write_app(app_dir: Path, version: str) -> None:
    (app_dir / "api").mkdir(parents=True, exist_ok=True)
    source = APP.format(version=version, size=MAX_INLINE_BYTES + 100)
    (app_dir / "api" / "app.py").write_text(source)
    (app_dir / "web").mkdir(exist_ok=True)
    (app_dir / "web" / "app.py").write_text(
        "import alien\n\n@alien.on_cron('tick')\ndef t(_): ...\n"
    )


def _manifest() -> Manifest:
    api = alien.Function("api").code(src="api", entrypoint="app:app").commands_enabled()
    web = alien.Function("web").code(src="web", entrypoint="app:app").schedule("tick", "0 3 * * *")
    return alien.Stack("demo").add(api, "live").add(web, "live").validate()


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    app = tmp_path / "app"
    _write_app(app, "v1")
    return app


@pytest.fixture
def lines() -> Lines:
    return Lines()


@pytest.fixture
async def platform(tmp_path: Path, app_dir: Path, lines: Lines) -> AsyncIterator[LocalPlatform]:
    platform = LocalPlatform(Area(tmp_path / "a"), sink=lines, timeouts=Timeouts(ready=20, grace=5))
    await platform.apply(_manifest(), app_dir, "r1")
    yield platform
    await platform.stop()


def _envelope(command: str, params: dict | None = None):  # type: ignore[no-untyped-def]
    return direct_envelope(command, params or {}, timeout=30)


async def test_a_command_runs_on_the_current_version(platform: LocalPlatform) -> None:
    dispatcher = LocalDispatcher(platform)
    response = await dispatcher.invoke("api", _envelope("whoami"))
    assert response.ok and response.result is not None
    status = platform.status()
    api = next(f for f in status.functions if f.id == "api")
    assert response.result == {"version": "v1", "pid": api.pid}
    assert api.control == platform.control_endpoints()["api"].address
    assert api.control is not None and api.control.startswith("unix:")
    web = next(f for f in status.functions if f.id == "web")
    assert web.control is None  # no commands enabled: no control endpoint
    assert await dispatcher.known_commands() == {"api": ["big", "hold", "whoami"]}
    unknown = await dispatcher.invoke("api", _envelope("nope"))
    assert unknown.error is not None and unknown.error.code == "UNKNOWN_COMMAND"


async def test_the_token_is_only_in_the_private_control_file(platform: LocalPlatform) -> None:
    area = platform.area
    token = platform.control_endpoints()["api"].token
    assert token not in repr(platform.control_endpoints())
    assert stat.S_IMODE(area.control_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(area.run_dir.stat().st_mode) == 0o700
    entry = json.loads(area.control_file.read_text())["functions"]["api"]
    assert entry["token"] == token and entry["release"] == "r1"
    socket_path = Path(entry["address"].removeprefix("unix:"))
    assert stat.S_IMODE(socket_path.lstat().st_mode) == 0o600
    assert token not in area.state_file.read_text()
    assert token not in area.log_file("api").read_text()
    assert token not in json.dumps(platform.status().to_dict())


async def test_another_process_finds_the_function_through_the_area(
    platform: LocalPlatform,
) -> None:
    dispatcher = LocalDispatcher(AreaControls(Area(platform.area.root)))
    response = await dispatcher.invoke("api", _envelope("whoami"))
    assert response.ok and response.result["version"] == "v1"  # type: ignore[index]
    await platform.stop()
    assert not platform.area.control_file.exists()
    assert list(platform.area.run_dir.iterdir()) == []  # sockets removed with their processes
    with pytest.raises(PlatformError) as info:
        await dispatcher.invoke("api", _envelope("whoami"))
    assert info.value.code == "FUNCTION_UNAVAILABLE" and info.value.field == "target"


async def test_a_function_without_commands_is_unavailable(platform: LocalPlatform) -> None:
    with pytest.raises(PlatformError) as info:
        await LocalDispatcher(platform).invoke("web", _envelope("whoami"))
    assert info.value.code == "FUNCTION_UNAVAILABLE"
    assert "functions taking commands: api" in info.value.message


async def test_a_command_in_flight_during_an_update_finishes_on_the_old_version(
    platform: LocalPlatform, app_dir: Path, tmp_path: Path, lines: Lines
) -> None:
    dispatcher = LocalDispatcher(platform)
    old_pid = platform.status().functions[0].pid
    marker, release = tmp_path / "started", tmp_path / "release"
    params = {"marker": str(marker), "release": str(release)}
    running = asyncio.create_task(dispatcher.invoke("api", _envelope("hold", params)))
    async with asyncio.timeout(20):
        while not marker.exists():
            await asyncio.sleep(0.02)
    _write_app(app_dir, "v2")
    mark = len(lines.lines)
    update = asyncio.create_task(platform.apply(_manifest(), app_dir, "r2"))
    await lines.wait_for("api", "SIGTERM received", start=mark)  # the old version is stopping
    # The new version is current already and takes new commands while the old one drains.
    fresh = await dispatcher.invoke("api", _envelope("whoami"))
    assert fresh.result is not None and fresh.result["version"] == "v2"  # type: ignore[index]
    assert not running.done() and not update.done()
    release.touch()
    held = await running
    assert held.ok and held.result == {"version": "v1", "pid": old_pid}
    status = await update
    assert status.release == "r2" and status.healthy


async def test_cancel_reaches_the_version_that_runs_the_command(
    platform: LocalPlatform, tmp_path: Path
) -> None:
    dispatcher = LocalDispatcher(platform)
    marker = tmp_path / "started"
    params = {"marker": str(marker), "release": str(tmp_path / "never")}
    envelope = _envelope("hold", params)
    running = asyncio.create_task(dispatcher.invoke("api", envelope))
    async with asyncio.timeout(20):
        while not marker.exists():
            await asyncio.sleep(0.02)
    assert await dispatcher.cancel("api", envelope.id)
    response = await running
    assert response.error is not None and response.error.code == "COMMAND_CANCELLED"
    assert not await dispatcher.cancel("api", envelope.id)  # not running any more


async def test_a_large_result_goes_through_the_offload_hook(platform: LocalPlatform) -> None:
    stored: list[bytes] = []

    async def offload(document: bytes) -> BlobRef:
        stored.append(document)
        return BlobRef(
            url="https://blobs.example/result",
            size=len(document),
            sha256=hashlib.sha256(document).hexdigest(),
        )

    response = await LocalDispatcher(platform, offload=offload).invoke("api", _envelope("big"))
    assert response.ok and response.result_ref is not None
    assert json.loads(stored[0]) == "y" * (MAX_INLINE_BYTES + 100)
    assert response.result_ref.size == len(stored[0])


async def test_a_restarted_process_is_published_again(platform: LocalPlatform) -> None:
    published = AreaControls(platform.area)
    dispatcher = LocalDispatcher(published)
    before = published.control_endpoints()["api"]
    old_pid = platform.status().functions[0].pid
    assert old_pid is not None
    os.kill(old_pid, signal.SIGKILL)
    # Waits on what the dispatcher reads, the published file: the platform's own view turns
    # to the new process a moment before the file does (a rare flake waited on that one and
    # then read the dead process's endpoint from the file).
    async with asyncio.timeout(20):
        while published.control_endpoints().get("api") in (None, before):
            await asyncio.sleep(0.05)
    response = await dispatcher.invoke("api", _envelope("whoami"))
    assert response.ok and response.result["pid"] != old_pid  # type: ignore[index]


class _StaleFirst:
    """A source that hands out a closed endpoint once, as a dispatcher racing a switch sees it
    (``again``: every time, as after a crash that nothing restarted)."""

    def __init__(self, platform: LocalPlatform, stale: Endpoint, again: bool = False):
        self.platform = platform
        self.stale = stale
        self.again = again
        self.calls = 0

    def control_endpoints(self) -> dict[str, Endpoint]:
        self.calls += 1
        if self.calls == 1 or self.again:
            return {"api": self.stale}
        return self.platform.control_endpoints()


async def test_an_endpoint_closed_by_a_switch_is_retried_on_the_current_one(
    platform: LocalPlatform, tmp_path: Path
) -> None:
    gone = Endpoint(f"unix:{tmp_path / 'gone.sock'}", "x" * 43)
    response = await LocalDispatcher(_StaleFirst(platform, gone)).invoke("api", _envelope("whoami"))
    assert response.ok
    dead = LocalDispatcher(_StaleFirst(platform, gone, again=True))
    with pytest.raises(PlatformError) as info:  # the same dead endpoint: nowhere to retry
        await dead.invoke("api", _envelope("whoami"))
    assert info.value.code == "FUNCTION_UNAVAILABLE" and "refused" in info.value.message


async def test_an_area_too_deep_for_a_unix_socket_uses_loopback_tcp(
    tmp_path: Path, app_dir: Path
) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    platform = LocalPlatform(Area(deep), timeouts=Timeouts(ready=20, grace=5))
    try:
        await platform.apply(_manifest(), app_dir, "r1")
        endpoint = platform.control_endpoints()["api"]
        assert endpoint.address.startswith("tcp:127.0.0.1:")
        response = await LocalDispatcher(AreaControls(platform.area)).invoke(
            "api", _envelope("whoami")
        )
        assert response.ok
    finally:
        await platform.stop()
