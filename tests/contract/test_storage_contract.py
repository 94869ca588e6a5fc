"""Storage contract: every backend must pass these unchanged."""

from __future__ import annotations

import hashlib
import io
import threading
import tracemalloc
from collections.abc import Iterator

import pytest

from alien.bindings.base import ObjectInfo, Storage
from alien.errors import InvalidKey, NotFound, ValidationError

MIB = 1 << 20

UNSAFE_KEYS = [
    "../escape",
    "a/../../escape",
    "a/..",
    "/etc/passwd",
    "./a",
    "a//b",
    "a/",
    "a\x00b",
    "a\\..\\b",
    "line\nbreak",
    "",
    "x" * 1025,
    "a/" + "s" * 256,
]


def test_put_get_roundtrip_and_info(storage: Storage) -> None:
    info = storage.put("docs/readme.md", b"# hello\n")
    assert isinstance(info, ObjectInfo)
    assert (info.key, info.size) == ("docs/readme.md", 8)
    assert info.modified.tzinfo is not None
    assert storage.get("docs/readme.md") == b"# hello\n"
    head = storage.head("docs/readme.md")
    assert (head.size, head.etag, head.content_type) == (8, info.etag, info.content_type)
    assert storage.exists("docs/readme.md")


@pytest.mark.parametrize(
    "data",
    [
        b"bytes",
        bytearray(b"bytes"),
        memoryview(b"bytes"),
        "bytes",
        io.BytesIO(b"bytes"),
        [b"by", b"", b"tes"],
        (chunk for chunk in [b"b", b"ytes"]),
    ],
    ids=["bytes", "bytearray", "memoryview", "str", "file", "list", "generator"],
)
def test_put_accepts_every_data_shape(storage: Storage, data: object) -> None:
    info = storage.put("k", data)  # type: ignore[arg-type]
    assert storage.get("k") == b"bytes"
    assert info.etag == storage.put("k2", b"bytes").etag


def test_text_is_utf8(storage: Storage) -> None:
    storage.put("t", "héllo ✓")
    assert storage.get("t") == "héllo ✓".encode()


@pytest.mark.parametrize("data", [123, None, ["str"], io.StringIO("text")])
def test_put_rejects_bad_data(storage: Storage, data: object) -> None:
    with pytest.raises(ValidationError) as err:
        storage.put("k", data)  # type: ignore[arg-type]
    assert err.value.field == "data"
    assert not storage.exists("k")


def test_content_type(storage: Storage) -> None:
    assert storage.put("a.json", b"{}").content_type == "application/json"
    assert storage.put("blob", b"\x00").content_type == "application/octet-stream"
    explicit = storage.put("x", b"1", content_type="text/csv; charset=utf-8")
    assert explicit.content_type == "text/csv; charset=utf-8"
    assert storage.head("x").content_type == "text/csv; charset=utf-8"
    with pytest.raises(ValidationError) as err:
        storage.put("y", b"1", content_type="not a type")
    assert err.value.field == "content_type"


def test_etag_follows_content(storage: Storage) -> None:
    first = storage.put("k", b"one").etag
    assert storage.put("k", b"two").etag != first
    assert storage.put("k", b"one").etag == first
    assert storage.get("k") == b"one"


def test_missing_objects(storage: Storage) -> None:
    for call in (storage.get, storage.head, storage.open, storage.iter):
        with pytest.raises(NotFound) as err:
            call("nope")
        assert err.value.field == "key"
    assert storage.exists("nope") is False
    assert storage.delete("nope") is False


def test_delete(storage: Storage) -> None:
    storage.put("a/b/c", b"1")
    storage.put("a/d", b"2")
    assert storage.delete("a/b/c") is True
    assert storage.delete("a/b/c") is False
    assert [o.key for o in storage.list()] == ["a/d"]
    assert storage.get("a/d") == b"2"


def test_a_prefix_is_not_an_object(storage: Storage) -> None:
    storage.put("dir/file", b"1")
    assert storage.exists("dir") is False
    with pytest.raises(NotFound):
        storage.get("dir")


def test_list_order_prefix_and_limit(storage: Storage) -> None:
    keys = ["b", "a/b", "a-c", "a/a/z", "ab", "a.x", "é", "z/1"]
    for key in keys:
        storage.put(key, key)
    listed = list(storage.list())
    assert [o.key for o in listed] == sorted(keys)  # code point order, like S3
    assert all(o.size == len(o.key.encode()) for o in listed)
    assert [o.key for o in storage.list("a/")] == ["a/a/z", "a/b"]
    assert [o.key for o in storage.list("a")] == ["a-c", "a.x", "a/a/z", "a/b", "ab"]
    assert [o.key for o in storage.list("a/a/z")] == ["a/a/z"]
    assert [o.key for o in storage.list(limit=2)] == sorted(keys)[:2]
    assert list(storage.list("nothing")) == []
    assert list(storage.list(limit=0)) == []


@pytest.mark.parametrize("key", UNSAFE_KEYS)
def test_unsafe_keys_refused_everywhere(storage: Storage, key: str) -> None:
    for call in (
        lambda: storage.put(key, b"x"),
        lambda: storage.get(key),
        lambda: storage.head(key),
        lambda: storage.delete(key),
        lambda: storage.exists(key),
        lambda: storage.open(key),
    ):
        with pytest.raises(InvalidKey) as err:
            call()
        assert err.value.field == "key"
        assert err.value.code == "INVALID_KEY"
    assert list(storage.list()) == []


def _pattern(total: int, chunk: int = MIB) -> Iterator[bytes]:
    for i in range(total // chunk):
        yield bytes([i % 251]) * chunk


def test_large_object_streams_with_bounded_memory(storage: Storage) -> None:
    total = 50 * MIB
    expected = hashlib.sha256()
    for chunk in _pattern(total):
        expected.update(chunk)

    tracemalloc.start()
    try:
        info = storage.put("big.bin", _pattern(total))
        digest = hashlib.sha256()
        for chunk in storage.iter("big.bin", chunk_size=MIB):
            assert len(chunk) <= MIB
            digest.update(chunk)
        with storage.open("big.bin") as stream:
            stream.seek(total - 10)
            tail = stream.read()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.size == total
    assert digest.hexdigest() == expected.hexdigest()
    assert tail == bytes([(total // MIB - 1) % 251]) * 10
    assert peak < 8 * MIB, f"peak {peak / MIB:.1f} MiB while streaming 50 MiB"


def test_readers_never_see_a_partial_object(storage: Storage) -> None:
    versions = [b"a" * 256 * 1024, b"b" * 256 * 1024]
    storage.put("hot", versions[0])
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for i in range(30):
                storage.put("hot", versions[i % 2])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            stop.set()

    thread = threading.Thread(target=writer)
    thread.start()
    reads = 0
    while not stop.is_set() or reads == 0:
        assert storage.get("hot") in versions
        reads += 1
    thread.join()
    assert not errors
    assert storage.get("hot") == versions[1]


async def test_async_view(storage: Storage) -> None:
    info = await storage.aio.put("async/one", b"1")
    assert info.size == 1
    await storage.aio.put("async/two", "2")
    assert await storage.aio.get("async/two") == b"2"
    assert [o.key async for o in storage.aio.list("async/")] == ["async/one", "async/two"]
    assert [c async for c in storage.aio.iter("async/one")] == [b"1"]
    async with await storage.aio.open("async/one") as stream:
        assert await stream.read() == b"1"
    assert await storage.aio.delete("async/one") is True
    with pytest.raises(NotFound):
        await storage.aio.get("async/one")
    with pytest.raises(NotFound):
        [c async for c in storage.aio.iter("async/one")]
