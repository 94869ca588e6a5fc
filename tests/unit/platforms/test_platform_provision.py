"""Provisioning by lifecycle, bindings (least privilege), the function environment, releases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import alien
from alien.bindings.base import Kv, Queue, Storage, Vault
from alien.errors import PlatformError
from alien.platforms.local import releases, resources
from alien.platforms.local.area import Area
from alien.platforms.local.function_env import function_environment
from alien.platforms.local.provision import drop, monitor, reconcile
from alien.platforms.local.state import AreaState
from alien.stack.spec import Manifest


def _manifest(
    *, visibility: int = 30, data_lifecycle: str = "frozen", with_cache: bool = True
) -> Manifest:
    data, creds = alien.Storage("data"), alien.Vault("creds")
    cache, tasks = alien.Kv("cache"), alien.Queue("tasks", visibility_timeout=visibility)
    api = (
        alien.Function("api")
        .code(src="api", entrypoint="app:app")
        .link(creds)
        .on_queue(tasks)
        .on_storage(data, events=("put",))
        .env({"GREETING": "hi"})
    )
    worker = alien.Function("worker").code(src="worker", entrypoint="main:app")
    stack = alien.Stack("demo").add(api, "live").add(worker, "live").add(data, data_lifecycle)
    stack.add(creds, "frozen").add(tasks, "live")
    if with_cache:
        stack.add(cache, "live")
        worker.link(cache)
    return stack.validate()


@pytest.fixture
def area(tmp_path: Path) -> Area:
    area = Area(tmp_path / "area")
    area.ensure()
    return area


def test_new_resources_are_created_and_recorded(area: Area) -> None:
    state = AreaState()
    result = reconcile(area, state, _manifest())
    assert sorted(state.resources) == ["cache", "creds", "data", "tasks"]
    assert state.resources["data"].lifecycle == "frozen"
    assert area.storage_dir("data").is_dir() and area.key_file("creds").is_file()
    assert area.kv_db("cache").is_file() and area.queue_db("tasks").is_file()
    assert result.warnings == [] and result.dropped == []
    assert all(r.health == "ok" for r in monitor(area, state, result.manifest))
    reconcile(area, state, _manifest())  # idempotent


def test_a_frozen_resource_is_never_modified_only_monitored(area: Area) -> None:
    state = AreaState()
    first = reconcile(area, state, _manifest())
    creds = resources.binding(area, first.manifest.resource("creds")).open()
    assert isinstance(creds, Vault)
    creds.set_secret("token", "s3cret")
    state.resources["tasks"].lifecycle = "frozen"  # as if the queue had been declared frozen
    later = reconcile(area, state, _manifest(visibility=99))
    assert any("frozen queue 'tasks': configuration change ignored" in w for w in later.warnings)
    # functions keep getting the configuration recorded at creation
    assert later.manifest.resource("tasks").config.visibility_timeout == 30
    assert creds.get_secret("token") == "s3cret"
    area.remove(area.storage_dir("data"))
    health = {r.id: (r.health, r.detail) for r in monitor(area, state, later.manifest)}
    assert health["data"] == ("missing", "missing: resources/storage/data")


def test_a_live_resource_follows_the_stack(area: Area) -> None:
    state = AreaState()
    reconcile(area, state, _manifest())
    later = reconcile(area, state, _manifest(visibility=99))
    assert later.manifest.resource("tasks").config.visibility_timeout == 99
    assert state.resources["tasks"].config == {"visibility_timeout": 99}


def test_dropped_resources_live_ones_deleted_frozen_ones_retained(area: Area) -> None:
    state = AreaState()
    reconcile(area, state, _manifest())
    stack = alien.Stack("demo").add(alien.Function("api").code(src="api", entrypoint="a:b"), "live")
    result = reconcile(area, state, stack.validate())
    assert sorted(result.dropped) == ["cache", "tasks"]
    assert any("frozen storage 'data' is no longer in the stack" in w for w in result.warnings)
    drop(area, state, result.dropped)
    assert not area.kv_db("cache").exists() and not area.queue_db("tasks").exists()
    assert area.storage_dir("data").is_dir() and sorted(state.resources) == ["creds", "data"]
    health = {r.id: r.health for r in monitor(area, state, result.manifest)}
    assert health == {"creds": "retained", "data": "retained"}


def test_a_frozen_resource_cannot_become_another_kind(area: Area) -> None:
    state = AreaState()
    reconcile(area, state, _manifest())
    stack = alien.Stack("demo").add(alien.Kv("data"), "live")
    with pytest.raises(PlatformError, match="frozen storage") as info:
        reconcile(area, state, stack.validate())
    assert info.value.field == "resources.data"


def test_a_function_gets_bindings_for_its_links_and_trigger_targets_only(area: Area) -> None:
    manifest = _manifest()
    reconcile(area, AreaState(), manifest)
    api = resources.function_bindings(area, manifest, manifest.function("api"))
    worker = resources.function_bindings(area, manifest, manifest.function("worker"))
    assert sorted(api) == ["creds", "data", "tasks"] and sorted(worker) == ["cache"]
    assert api["data"].config.events == area.events_db("data")  # it has a storage trigger
    for binding, kind in ((api["data"], Storage), (api["tasks"], Queue), (worker["cache"], Kv)):
        with binding.open() as backend:
            assert isinstance(backend, kind)


def test_two_storage_triggers_on_one_storage_are_refused() -> None:
    data = alien.Storage("data")
    a = alien.Function("a").code(src="a", entrypoint="m:app").on_storage(data)
    b = alien.Function("b").code(src="b", entrypoint="m:app").on_storage(data)
    stack = alien.Stack("demo").add(a, "live").add(b, "live").add(data, "frozen")
    with pytest.raises(PlatformError, match="one function"):
        resources.storages_with_events(stack.validate())


def test_the_function_environment_holds_the_contract_and_nothing_else(area: Area) -> None:
    manifest = _manifest()
    fn = manifest.function("api")
    bindings = resources.function_bindings(area, manifest, fn)
    parent = {"PATH": "/bin", "LC_ALL": "C", "AWS_SECRET_ACCESS_KEY": "x", "ALIEN_TOKEN": "t"}
    env = function_environment(fn, bindings, environ=parent)
    assert env["PATH"] == "/bin" and env["LC_ALL"] == "C" and env["GREETING"] == "hi"
    assert "AWS_SECRET_ACCESS_KEY" not in env and "ALIEN_TOKEN" not in env  # no leaks
    assert env["ALIEN_FUNCTION"] == "api" and env["ALIEN_ENTRYPOINT"] == "app:app"
    assert "ALIEN_PORT" not in env and "ALIEN_HOST" not in env  # no port of its own
    assert env["ALIEN_COMMANDS_ENABLED"] == "0"
    assert sorted(json.loads(env["ALIEN_BINDINGS"])) == ["creds", "data", "tasks"]
    assert [t["type"] for t in json.loads(env["ALIEN_TRIGGERS"])] == ["queue", "storage"]


def test_staging_copies_code_without_caches_or_the_area(tmp_path: Path) -> None:
    app = tmp_path / "app"
    (app / "api" / "__pycache__").mkdir(parents=True)
    (app / "api" / "app.py").write_text("app = None\n")
    (app / "api" / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"\0")
    (app / "worker").mkdir()
    (app / "worker" / "main.py").write_text("app = None\n")
    area = Area(app / ".alien" / "dev")  # alien dev keeps its area inside the app
    area.ensure()
    functions = _manifest().functions()
    target = releases.stage(area, "r1", app, functions)
    assert (target / "api" / "app.py").read_text() == "app = None\n"
    assert not (target / "api" / "__pycache__").exists()
    assert releases.code_dir(area, "r1", functions[0]) == target / "api"
    (app / "api" / "app.py").write_text("changed\n")
    assert releases.stage(area, "r1", app, functions) == target  # staged once: reused
    assert (target / "api" / "app.py").read_text() == "app = None\n"
    releases.stage(area, "r2", app, functions)
    releases.prune(area, keep={"r2"})
    assert sorted(p.name for p in area.releases_dir.iterdir()) == ["r2"]


def test_a_symlink_out_of_the_code_directory_is_refused(tmp_path: Path) -> None:
    app = tmp_path / "app"
    (app / "api").mkdir(parents=True)
    (app / "worker").mkdir()
    (tmp_path / "secret.txt").write_text("do not ship")
    (app / "api" / "leak.txt").symlink_to(tmp_path / "secret.txt")
    area = Area(tmp_path / "area")
    area.ensure()
    with pytest.raises(PlatformError, match="symlink leading outside"):
        releases.stage(area, "r1", app, _manifest().functions())
    assert not area.release_dir("r1").exists()  # nothing half-staged is left
