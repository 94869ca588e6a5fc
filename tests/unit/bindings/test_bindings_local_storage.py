"""Local storage specifics: symlink containment, on-disk layout, events, crash leftovers."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from key_strategies import path_text

from alien.bindings.events import StorageEvent
from alien.bindings.local import LocalQueue, LocalStorage
from alien.errors import Conflict, InvalidKey, NotFound, ValidationError


@pytest.fixture
def bucket(tmp_path: Path) -> Path:
    return tmp_path / "bucket"


@pytest.fixture
def storage(bucket: Path) -> LocalStorage:
    return LocalStorage("data", bucket)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    secret_dir = tmp_path / "outside"
    secret_dir.mkdir()
    (secret_dir / "passwd").write_bytes(b"root:x:0:0")
    return secret_dir


def test_objects_are_plain_private_files(storage: LocalStorage, bucket: Path) -> None:
    storage.put("a/b.txt", b"hello")
    path = bucket / "objects" / "a" / "b.txt"
    assert path.read_bytes() == b"hello"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in bucket.iterdir()) == ["lock", "meta", "objects", "tmp"]
    assert list((bucket / "tmp").iterdir()) == []


def test_symlinked_directory_is_not_followed(
    storage: LocalStorage, bucket: Path, outside: Path
) -> None:
    os.symlink(outside, bucket / "objects" / "link")
    for call in (
        lambda: storage.get("link/passwd"),
        lambda: storage.head("link/passwd"),
        lambda: storage.delete("link/passwd"),
        lambda: storage.put("link/planted", b"x"),
    ):
        with pytest.raises(InvalidKey, match="symbolic link"):
            call()
    assert sorted(p.name for p in outside.iterdir()) == ["passwd"]
    assert (outside / "passwd").read_bytes() == b"root:x:0:0"
    assert [o.key for o in storage.list()] == []  # listing skips links too


def test_symlinked_file_is_not_followed(storage: LocalStorage, bucket: Path, outside: Path) -> None:
    os.symlink(outside / "passwd", bucket / "objects" / "passwd")
    with pytest.raises(InvalidKey, match="symbolic link"):
        storage.get("passwd")
    assert storage.exists("passwd") is False
    assert storage.delete("passwd") is False
    # A put replaces the link itself; the target outside is untouched.
    storage.put("passwd", b"mine")
    assert storage.get("passwd") == b"mine"
    assert not (bucket / "objects" / "passwd").is_symlink()
    assert (outside / "passwd").read_bytes() == b"root:x:0:0"


def test_key_and_keys_below_it_conflict(storage: LocalStorage) -> None:
    storage.put("a", b"1")
    with pytest.raises(Conflict) as err:
        storage.put("a/b", b"2")
    assert err.value.field == "key"
    storage.put("x/y", b"1")
    with pytest.raises(Conflict):
        storage.put("x", b"2")
    assert storage.get("a") == b"1"
    assert storage.get("x/y") == b"1"
    assert storage.exists("a/b") is False


def test_delete_prunes_empty_directories(storage: LocalStorage, bucket: Path) -> None:
    storage.put("deep/er/key", b"1")
    storage.put("deep/other", b"2")
    storage.delete("deep/er/key")
    assert not (bucket / "objects" / "deep" / "er").exists()
    storage.delete("deep/other")
    assert list((bucket / "objects").iterdir()) == []
    assert list((bucket / "meta").glob("*/*.json")) == []  # sidecars go with their objects
    storage.put("deep/er/key", b"3")  # and the path can be used again
    assert storage.get("deep/er/key") == b"3"


def test_stale_sidecar_is_detected(storage: LocalStorage, bucket: Path) -> None:
    info = storage.put("k.bin", b"original", content_type="application/x-custom")
    # Simulate a writer that crashed after renaming the object but before its sidecar.
    (bucket / "objects" / "k.bin").write_bytes(b"changed behind our back")
    head = storage.head("k.bin")
    assert head.etag != info.etag
    assert head.size == len(b"changed behind our back")
    assert head.content_type == "application/octet-stream"
    assert storage.put("k.bin", b"original").etag == info.etag


def test_failed_put_leaves_nothing(storage: LocalStorage, bucket: Path) -> None:
    def chunks():
        yield b"partial"
        raise RuntimeError("source broke")

    with pytest.raises(RuntimeError):
        storage.put("k", chunks())
    with pytest.raises(ValidationError):
        storage.put("k", [b"ok", "not bytes"])  # type: ignore[list-item]
    with pytest.raises(NotFound):
        storage.get("k")
    assert list((bucket / "tmp").iterdir()) == []


def test_old_temp_files_are_swept(bucket: Path) -> None:
    LocalStorage("data", bucket)
    old, fresh = bucket / "tmp" / "old.part", bucket / "tmp" / "fresh.part"
    old.write_bytes(b"x")
    fresh.write_bytes(b"x")
    os.utime(old, (0, 0))
    LocalStorage("data", bucket)
    assert sorted(p.name for p in (bucket / "tmp").iterdir()) == ["fresh.part"]


def test_the_sweep_never_follows_a_tmp_replaced_by_a_link(tmp_path: Path, bucket: Path) -> None:
    """Whatever can write in the bucket could put a link where ``tmp/`` was: the sweep then
    leaves alone the old files of the directory it points at."""
    LocalStorage("data", bucket)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    precious = elsewhere / "old.txt"
    precious.write_bytes(b"keep me")
    os.utime(precious, (0, 0))
    (bucket / "tmp").rmdir()
    (bucket / "tmp").symlink_to(elsewhere)
    LocalStorage("data", bucket)
    assert precious.read_bytes() == b"keep me"


def test_events_for_put_and_delete(tmp_path: Path, bucket: Path) -> None:
    events_db = tmp_path / "events" / "data.db"
    storage = LocalStorage("data", bucket, events=events_db)
    storage.put("in/a.csv", b"1,2\n")
    storage.put("in/a.csv", b"1,2,3\n")
    storage.delete("in/a.csv")
    storage.delete("in/a.csv")  # nothing deleted: no event
    storage.close()

    with LocalQueue(events_db) as events:
        received = events.receive(max_messages=10)
        parsed = [StorageEvent.from_json(m.body) for m in received]
    assert [(e.event, e.storage, e.key, e.size) for e in parsed] == [
        ("put", "data", "in/a.csv", 4),
        ("put", "data", "in/a.csv", 6),
        ("delete", "data", "in/a.csv", 6),
    ]
    assert all(e.time.tzinfo is not None for e in parsed)
    assert parsed[0].time <= parsed[1].time <= parsed[2].time
    assert StorageEvent.from_json(parsed[0].to_json()) == parsed[0]


def test_no_events_without_events_config(storage: LocalStorage, bucket: Path) -> None:
    storage.put("a", b"1")
    assert not list(bucket.parent.glob("**/*.db"))


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"event": "rename", "storage": "s", "key": "k", "size": 1, '
        b'"time": "2026-01-01T00:00:00+00:00"}',
        b'{"event": "put", "storage": "s", "key": "k", "size": "1", '
        b'"time": "2026-01-01T00:00:00+00:00"}',
        b'{"event": "put", "storage": "s", "key": "k", "size": 1, "time": "2026-01-01T00:00:00"}',
        b'{"event": "put"}',
    ],
)
def test_event_parsing_rejects_garbage(body: bytes) -> None:
    with pytest.raises(ValidationError) as err:
        StorageEvent.from_json(body)
    assert err.value.field == "body"


@settings(max_examples=60, deadline=None)
@given(path_text)
def test_any_key_is_refused_or_lands_at_its_path_in_the_bucket(key: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        bucket = Path(tmp) / "bucket"
        storage = LocalStorage("data", bucket)
        files_before = {p for p in Path(tmp).rglob("*") if p.is_file()}
        try:
            storage.put(key, b"payload")
        except InvalidKey:
            assert {p for p in Path(tmp).rglob("*") if p.is_file()} == files_before
            return
        target = bucket / "objects" / key
        assert target.resolve().is_relative_to((bucket / "objects").resolve())
        assert target.read_bytes() == b"payload"
        assert [o.key for o in storage.list()] == [key]
