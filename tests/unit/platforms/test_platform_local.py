"""``LocalPlatform`` end to end with real function processes (the runtime) and real HTTP."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import tempfile
import textwrap
from collections import Counter
from pathlib import Path

import httpx
import psutil
import pytest

import alien
from alien.errors import PlatformError
from alien.platforms.local.area import Area
from alien.platforms.local.control_file import AreaControls
from alien.platforms.local.platform import LocalPlatform
from alien.platforms.local.supervisor import Timeouts
from alien.stack.spec import Manifest

APP = textwrap.dedent(
    """
    import json, os
    VERSION = {version!r}

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        body = json.dumps({{
            "version": VERSION,
            "pid": os.getpid(),
            "bindings": sorted(json.loads(os.environ["ALIEN_BINDINGS"])),
        }}).encode()
        await send({{"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]}})
        await send({{"type": "http.response.body", "body": body}})
    """
)


def _write_app(app_dir: Path, version: str, source: str | None = None) -> None:
    (app_dir / "api").mkdir(parents=True, exist_ok=True)
    (app_dir / "api" / "app.py").write_text(source or APP.format(version=version))


def _manifest() -> Manifest:
    cache, other = alien.Kv("cache"), alien.Kv("other")
    api = alien.Function("api").code(src="api", entrypoint="app:app").link(cache)
    api.ingress("public")
    return alien.Stack("demo").add(api, "live").add(cache, "live").add(other, "live").validate()


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    app = tmp_path / "app"
    _write_app(app, "v1")
    return app


@pytest.fixture
async def platform(tmp_path: Path):  # type: ignore[no-untyped-def]
    platform = LocalPlatform(Area(tmp_path / "area"), timeouts=Timeouts(ready=20, grace=5))
    yield platform
    await platform.stop()


async def _get(url: str) -> dict:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(url)
    response.raise_for_status()
    return response.json()


async def test_apply_provisions_starts_and_serves_on_the_ingress(
    platform: LocalPlatform, app_dir: Path
) -> None:
    status = await platform.apply(_manifest(), app_dir, "r1")
    url = status.urls["api"]
    body = await _get(url)
    assert body["version"] == "v1"
    assert body["bindings"] == ["cache"]  # only its link, not the other kv
    assert status.release == "r1" and status.healthy
    (fn,) = status.functions
    assert (fn.id, fn.state, fn.release, fn.pid) == ("api", "running", "r1", body["pid"])
    area = platform.area
    assert (area.release_dir("r1") / "api" / "app.py").is_file()
    assert "alien-runtime: ready function=api" in area.log_file("api").read_text()
    assert area.kv_db("cache").is_file() and area.kv_db("other").is_file()
    again = await platform.apply(_manifest(), app_dir, "r1")  # same release: nothing restarts
    assert again.functions[0].pid == fn.pid


async def test_an_update_under_load_loses_no_request(
    platform: LocalPlatform, app_dir: Path
) -> None:
    url = (await platform.apply(_manifest(), app_dir, "r1")).urls["api"]
    old_pid = (await _get(url))["pid"]
    _write_app(app_dir, "v2")
    stop = asyncio.Event()
    seen: Counter[str] = Counter()
    errors: list[BaseException] = []

    async def hammer() -> None:
        async with httpx.AsyncClient(timeout=10) as client:  # keep-alive connections
            while not stop.is_set():
                try:
                    response = await client.get(url)
                    seen[f"{response.status_code} {response.json()['version']}"] += 1
                except Exception as exc:
                    errors.append(exc)

    clients = [asyncio.create_task(hammer()) for _ in range(4)]
    while sum(seen.values()) < 20:  # the load is on before the update starts
        await asyncio.sleep(0.01)
    status = await platform.apply(_manifest(), app_dir, "r2")
    after_update = sum(seen.values())
    while sum(seen.values()) < after_update + 20:
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.gather(*clients)
    assert errors == []
    assert set(seen) == {"200 v1", "200 v2"}, seen
    assert status.urls["api"] == url  # same port throughout
    assert not psutil.pid_exists(old_pid)  # the old version was stopped


async def test_a_release_that_fails_to_start_leaves_the_old_one_serving(
    platform: LocalPlatform, app_dir: Path
) -> None:
    url = (await platform.apply(_manifest(), app_dir, "r1")).urls["api"]
    _write_app(app_dir, "v2", source="def broken(:\n")
    with pytest.raises(PlatformError, match="release r2 was not applied") as info:
        await platform.apply(_manifest(), app_dir, "r2")
    assert "SyntaxError" in info.value.message  # the function's own output says why
    assert info.value.details["release"] == "r2"
    assert (await _get(url))["version"] == "v1"
    status = platform.status()
    assert status.release == "r1" and status.functions[0].release == "r1"


async def test_a_crashed_function_is_restarted_behind_the_same_url(
    platform: LocalPlatform, app_dir: Path
) -> None:
    url = (await platform.apply(_manifest(), app_dir, "r1")).urls["api"]
    first = (await _get(url))["pid"]
    os.kill(first, signal.SIGKILL)
    body = await _get(url)  # held by the ingress until the restarted process is ready
    assert body["pid"] != first and body["version"] == "v1"
    assert platform.status().functions[0].restarts == 1


async def test_stop_leaves_no_process_and_a_restart_reuses_the_port(
    tmp_path: Path, app_dir: Path
) -> None:
    area = Area(tmp_path / "area")
    platform = LocalPlatform(area)
    url = (await platform.apply(_manifest(), app_dir, "r1")).urls["api"]
    pid = (await _get(url))["pid"]
    with pytest.raises(PlatformError, match="in use by another alien process"):
        await LocalPlatform(area).apply(_manifest(), app_dir, "r1")
    await platform.stop()
    assert not psutil.pid_exists(pid)
    with pytest.raises(httpx.ConnectError):
        await _get(url)
    again = LocalPlatform(area)
    try:
        assert (await again.apply(_manifest(), app_dir, "r2")).urls["api"] == url
    finally:
        await again.teardown()
    assert not area.root.exists()


def _runtime_children(area: Path) -> list[psutil.Process]:
    """Function processes of ``area`` still alive (other tests in this worker may still be
    stopping theirs: a function runs in its release's code directory inside its area)."""
    alive = []
    for child in psutil.Process().children(recursive=True):
        try:
            if (
                "alien.sdk.runtime" in child.cmdline()
                and child.status() != psutil.STATUS_ZOMBIE
                and Path(child.cwd()).is_relative_to(area.resolve())
            ):
                alive.append(child)
        except psutil.NoSuchProcess:
            continue
    return alive


async def test_an_update_is_all_or_nothing_across_functions(tmp_path: Path, app_dir: Path) -> None:
    (app_dir / "worker").mkdir()
    (app_dir / "worker" / "main.py").write_text(
        "import alien\n\n@alien.on_cron('tick')\ndef tick(t):\n    pass\n"
    )
    api = alien.Function("api").code(src="api", entrypoint="app:app").ingress("public")
    worker = alien.Function("worker").code(src="worker", entrypoint="main:none")
    manifest = (
        alien.Stack("demo").add(api, "live").add(worker.schedule("tick", "0 3 * * *"), "live")
    )
    platform = LocalPlatform(Area(tmp_path / "area"))
    try:
        url = (await platform.apply(manifest.validate(), app_dir, "r1")).urls["api"]
        before = {p.pid for p in _runtime_children(tmp_path / "area")}
        assert len(before) == 2  # a trigger-only worker runs without any HTTP app
        _write_app(app_dir, "v2")
        (app_dir / "worker" / "main.py").write_text("raise RuntimeError('worker v2 is broken')\n")
        with pytest.raises(PlatformError, match="worker v2 is broken"):
            await platform.apply(manifest.validate(), app_dir, "r2")
        assert (await _get(url))["version"] == "v1"  # api v2 started fine, but was not kept
        assert {p.pid for p in _runtime_children(tmp_path / "area")} == before
    finally:
        await platform.stop()
    assert _runtime_children(tmp_path / "area") == []


def _tcp_listeners(pid: int) -> list[str]:
    return [
        f"{c.laddr.ip}:{c.laddr.port}"
        for c in psutil.Process(pid).net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    ]


def _public_and_private(app_dir: Path) -> Manifest:
    (app_dir / "internal").mkdir()
    (app_dir / "internal" / "app.py").write_text(APP.format(version="private"))
    api = alien.Function("api").code(src="api", entrypoint="app:app").ingress("public")
    internal = alien.Function("internal").code(src="internal", entrypoint="app:app")
    return alien.Stack("demo").add(api, "live").add(internal, "live").validate()


async def test_function_apps_listen_on_private_sockets_not_on_tcp(app_dir: Path) -> None:
    """Any local user can connect to a loopback port; a 0600 socket in the 0700 run/ directory
    only this user can. A private function's app is reachable by the platform alone, and a
    public one only through its ingress (the one TCP listener, in the platform's process)."""
    with tempfile.TemporaryDirectory(prefix="alien-") as root:  # a short path, whatever tmp_path
        platform = LocalPlatform(Area(Path(root) / "area"))
        try:
            status = await platform.apply(_public_and_private(app_dir), app_dir, "r1")
            assert set(status.urls) == {"api"}  # the private function has no URL at all
            assert (await _get(status.urls["api"]))["version"] == "v1"
            for fn in status.functions:
                assert fn.pid is not None and _tcp_listeners(fn.pid) == [], fn.id
            run = platform.area.run_dir
            sockets = [p for p in run.iterdir() if p.name.startswith("http-")]
            assert len(sockets) == 2
            assert {stat.S_IMODE(p.stat().st_mode) for p in sockets} == {0o600}
        finally:
            await platform.stop()


async def test_an_area_too_deep_for_sockets_guards_the_loopback_port_with_the_token(
    tmp_path: Path, app_dir: Path
) -> None:
    deep = Area(tmp_path / ("d" * 100) / "area")  # no socket path fits: loopback TCP instead
    platform = LocalPlatform(deep)
    try:
        status = await platform.apply(_public_and_private(app_dir), app_dir, "r1")
        assert (await _get(status.urls["api"]))["version"] == "v1"  # with the ingress's token
        private = next(fn for fn in status.functions if fn.id == "internal")
        assert private.pid is not None
        (listener,) = _tcp_listeners(private.pid)
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.get(f"http://{listener}/")
        assert response.status_code == 401  # any local process could connect: none gets in
    finally:
        await platform.stop()


async def test_a_dead_process_s_loopback_port_gets_nothing_from_the_platform(
    tmp_path: Path, app_dir: Path
) -> None:
    """On the loopback fallback a killed process's port is free for any local user to bind.
    The platform must stop routing to it (client requests carry cookies and the http token) and
    advertising it in control.json (``alien dev command`` sends the control token) at once, not
    when the replacement is ready."""
    api = alien.Function("api").code(src="api", entrypoint="app:app").ingress("public")
    manifest = alien.Stack("demo").add(api.commands_enabled(), "live").validate()
    platform = LocalPlatform(Area(tmp_path / ("d" * 100) / "area"))
    controls = AreaControls(platform.area)
    impostor_saw: list[bytes] = []

    async def impostor(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        impostor_saw.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\nconnection: close\r\n\r\nspoofed")
        await writer.drain()
        writer.close()

    try:
        status = await platform.apply(manifest, app_dir, "r1")
        (fn,) = status.functions
        backend = platform._ingresses["api"].backend
        assert fn.pid is not None and backend is not None
        port = int(backend.endpoint.address.rsplit(":", 1)[1])
        assert set(controls.control_endpoints()) == {"api"}
        os.kill(fn.pid, signal.SIGKILL)
        while platform.status().functions[0].state != "restarting":
            await asyncio.sleep(0.005)
        server = await asyncio.start_server(impostor, "127.0.0.1", port, reuse_address=True)
        async with server:
            async with asyncio.timeout(5):
                while "api" in controls.control_endpoints():
                    await asyncio.sleep(0.01)
            assert platform.status().functions[0].state == "restarting"
            async with httpx.AsyncClient(timeout=30) as client:
                response = await client.get(status.urls["api"], headers={"cookie": "s=victim"})
        assert impostor_saw == []
        assert response.json()["pid"] not in (fn.pid, None)  # held until the restarted one
        assert set(controls.control_endpoints()) == {"api"}  # published again once ready
    finally:
        await platform.stop()


async def test_the_tokens_are_in_no_process_environment(
    platform: LocalPlatform, app_dir: Path
) -> None:
    """``/proc/<pid>/environ`` keeps a process's initial environment for its whole life, readable
    by the function's own children: the tokens come through an inherited pipe instead."""
    api = alien.Function("api").code(src="api", entrypoint="app:app").ingress("public")
    manifest = alien.Stack("demo").add(api.commands_enabled(), "live").validate()
    status = await platform.apply(manifest, app_dir, "r1")
    body = await _get(status.urls["api"])  # the runtime got its http token
    assert set(platform.control_endpoints()) == {"api"}
    backend = platform._ingresses["api"].backend
    assert backend is not None
    tokens = {backend.endpoint.token, platform.control_endpoints()["api"].token}
    environ = psutil.Process(body["pid"]).environ()
    assert "ALIEN_HTTP_ADDRESS" in environ and "ALIEN_CONTROL_ADDRESS" in environ
    assert not [k for k in environ if k.endswith("_TOKEN")]
    assert not tokens & set(environ.values())
