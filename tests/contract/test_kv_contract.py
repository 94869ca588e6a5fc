"""Kv contract: every backend must pass these unchanged."""

from __future__ import annotations

import time
from typing import Any

import pytest
from contract_support import drain, join_all, kv_racer, new_channel, open_entry, run_processes

from alien.bindings.base import Kv
from alien.bindings.validate import MAX_VALUE_BYTES
from alien.errors import InvalidKey, ValidationError


def wait_until_gone(kv: Kv, key: str, timeout: float = 5.0) -> float:
    """Poll until ``key`` reads as absent; seconds it took (fails after ``timeout``)."""
    start = time.monotonic()
    while kv.get(key) is not None:
        assert time.monotonic() - start < timeout, f"{key!r} did not expire"
        time.sleep(0.01)
    return time.monotonic() - start


def test_set_get_delete(kv: Kv) -> None:
    assert kv.get("missing") is None
    kv.set("a", b"\x00\x01")
    kv.set("t", "héllo")
    assert kv.get("a") == b"\x00\x01"
    assert kv.get("t") == "héllo".encode()
    kv.set("a", b"2")
    assert kv.get("a") == b"2"
    assert kv.delete("a") is True
    assert kv.delete("a") is False
    assert kv.get("a") is None


def test_empty_value_is_a_value(kv: Kv) -> None:
    kv.set("e", b"")
    assert kv.get("e") == b""


def test_scan_prefix_order_limit(kv: Kv) -> None:
    keys = ["user/2", "user/10", "user/1", "users", "u", "zeta", "a"]
    for key in keys:
        kv.set(key, key)
    assert [k for k, _ in kv.scan()] == sorted(keys)
    assert list(kv.scan("user/")) == [(k, k.encode()) for k in ["user/1", "user/10", "user/2"]]
    assert [k for k, _ in kv.scan("user", limit=2)] == ["user/1", "user/10"]
    assert list(kv.scan("nothing")) == []


def test_scan_pages_through_many_keys(kv: Kv) -> None:
    for i in range(600):
        kv.set(f"p/{i:04d}", str(i))
    kv.set("q", "after")
    scanned = [k for k, _ in kv.scan("p/")]
    assert scanned == [f"p/{i:04d}" for i in range(600)]


def test_ttl_expiry(kv: Kv) -> None:
    kv.set("short", b"v", ttl=0.3)
    kv.set("long", b"v", ttl=60)
    kv.set("forever", b"v")
    assert kv.get("short") == b"v"
    assert [k for k, _ in kv.scan()] == ["forever", "long", "short"]
    started = time.monotonic()
    wait_until_gone(kv, "short")
    assert time.monotonic() - started >= 0.2
    assert [k for k, _ in kv.scan()] == ["forever", "long"]
    assert kv.delete("short") is False
    kv.set("long", b"w")  # overwriting without ttl clears the expiry
    assert kv.get("long") == b"w"


def test_set_if_absent(kv: Kv) -> None:
    assert kv.set_if_absent("once", b"first") is True
    assert kv.set_if_absent("once", b"second") is False
    assert kv.get("once") == b"first"
    assert kv.set_if_absent("lease", b"a", ttl=0.2) is True
    assert kv.set_if_absent("lease", b"b") is False
    wait_until_gone(kv, "lease")
    assert kv.set_if_absent("lease", b"c") is True
    assert kv.get("lease") == b"c"


@pytest.mark.parametrize("ttl", [0, -1, float("nan"), float("inf"), "5", True])
def test_bad_ttl(kv: Kv, ttl: Any) -> None:
    with pytest.raises(ValidationError) as err:
        kv.set("k", b"v", ttl=ttl)
    assert err.value.field == "ttl"


def test_bad_values_and_keys(kv: Kv) -> None:
    with pytest.raises(ValidationError) as err:
        kv.set("k", 5)  # type: ignore[arg-type]
    assert err.value.field == "value"
    with pytest.raises(ValidationError) as err:
        kv.set("k", b"x" * (MAX_VALUE_BYTES + 1))
    assert err.value.field == "value"
    kv.set("k", b"x" * MAX_VALUE_BYTES)
    for key in ["", "../x", "/x", "a\x00"]:
        with pytest.raises(InvalidKey):
            kv.get(key)
        with pytest.raises(InvalidKey):
            kv.set(key, b"v")


async def test_async_view(kv: Kv) -> None:
    await kv.aio.set("a/1", "one")
    await kv.aio.set("a/2", b"two")
    assert await kv.aio.get("a/1") == b"one"
    assert await kv.aio.set_if_absent("a/1", b"x") is False
    assert [pair async for pair in kv.aio.scan("a/")] == [("a/1", b"one"), ("a/2", b"two")]
    assert await kv.aio.delete("a/2") is True


def test_processes_race_safely(binding: Any) -> None:
    """Several processes on one kv: exactly one set_if_absent wins each key, nothing is lost."""
    entry = binding("kv")
    workers, keys = 4, 40
    out = new_channel()
    processes = run_processes(kv_racer, [(entry, w, keys, out) for w in range(workers)])
    results = dict(drain(out, workers))
    join_all(processes)

    shared = open_entry(entry, Kv)
    winners: dict[int, int] = {}
    for worker, won in results.items():
        for key in won:
            assert key not in winners, f"race/{key} won twice"
            winners[key] = worker
    assert sorted(winners) == list(range(keys))
    for key, worker in winners.items():
        assert shared.get(f"race/{key}") == f"w{worker}".encode()
    assert len(list(shared.scan("own/"))) == workers * keys
    shared.close()
