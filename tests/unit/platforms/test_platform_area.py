"""The area: its layout, refusing paths outside it, its lock, and state.json."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from alien.errors import InvalidKey, PlatformError
from alien.platforms.local.area import Area, AreaLock
from alien.platforms.local.state import AreaState, ResourceRecord, load_state, save_state


def test_the_layout_matches_the_contract(tmp_path: Path) -> None:
    area = Area(tmp_path / "dep")
    area.ensure()
    root = area.root
    assert area.storage_dir("data") == root / "resources/storage/data"
    assert area.events_db("data") == root / "resources/events/data.db"
    assert area.vault_file("creds") == root / "resources/vault/creds.vault"
    assert area.key_file("creds") == root / "keys/creds.key"
    assert area.kv_db("cache") == root / "resources/kv/cache.db"
    assert area.queue_db("tasks") == root / "resources/queue/tasks.db"
    assert area.release_dir("rel_1") == root / "releases/rel_1"
    assert area.log_file("api") == root / "logs/api.log"
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert stat.S_IMODE((root / "keys").stat().st_mode) == 0o700


@pytest.mark.parametrize("name", ["..", "../x", "a/b", "", ".hidden", "x" * 200, "nul\0"])
def test_names_that_are_not_one_plain_path_component_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidKey):
        Area(tmp_path).storage_dir(name)


def test_a_symlink_planted_in_the_area_cannot_lead_outside(tmp_path: Path) -> None:
    area = Area(tmp_path / "dep")
    area.ensure()
    outside = tmp_path / "outside"
    outside.mkdir()
    (area.root / "resources" / "kv").symlink_to(outside)
    with pytest.raises(InvalidKey, match="outside the area"):
        area.kv_db("cache")
    with pytest.raises(PlatformError):
        area.remove(outside / "file")
    area.remove(area.root / "resources" / "kv")  # the link itself may go; its target stays
    assert outside.is_dir()


def test_one_platform_process_per_area(tmp_path: Path) -> None:
    area = Area(tmp_path)
    area.ensure()
    first, second = AreaLock(area), AreaLock(area)
    first.acquire()
    with pytest.raises(
        PlatformError, match=f"in use by another alien process \\(pid {os.getpid()}"
    ):
        second.acquire()
    first.release()
    second.acquire()  # free again once released (or once the holder dies)
    second.release()


def test_state_round_trips_atomically_and_privately(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    fresh = load_state(path)  # a new area
    assert (fresh.stack, fresh.release, fresh.resources) == (None, None, {})
    state = AreaState(stack="pages", release="r1", ingress_ports={"api": 8080})
    state.resources["data"] = ResourceRecord(kind="storage", lifecycle="frozen")
    save_state(path, state)
    assert load_state(path).model_dump() == state.model_dump()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temp file left behind
    path.write_text(json.dumps({"resources": "nope"}))
    with pytest.raises(PlatformError, match="corrupt"):
        load_state(path)


def test_an_area_created_loosely_beforehand_is_made_private(tmp_path: Path) -> None:
    """A root or ``logs/`` someone made 0755 (by hand, another tool) would leave function output
    and staged code readable by every local user: ``ensure`` makes every directory 0700."""
    root = tmp_path / "dep"
    (root / "logs").mkdir(parents=True, mode=0o755)
    (root / "releases").mkdir(mode=0o777)
    root.chmod(0o755)
    area = Area(root)
    area.ensure()
    for path in (root, *(p for p in root.iterdir() if p.is_dir())):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
