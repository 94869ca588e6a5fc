"""``alien.storage/vault/kv/queue``: bindings from the environment, cached, re-read on change."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import alien
from alien.bindings.base import Kv, Queue, Storage, Vault
from alien.errors import BindingError


def bind(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    monkeypatch.setenv(
        "ALIEN_BINDINGS",
        json.dumps(
            {
                "data": {"kind": "storage", "platform": "local", "path": str(root / "data")},
                "creds": {
                    "kind": "vault",
                    "platform": "local",
                    "path": str(root / "vault" / "creds.vault"),
                    "key_file": str(root / "keys" / "creds.key"),
                },
                "cache": {"kind": "kv", "platform": "local", "path": str(root / "kv.db")},
                "tasks": {"kind": "queue", "platform": "local", "path": str(root / "q.db")},
            }
        ),
    )


def test_accessors_return_working_backends(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bind(monkeypatch, tmp_path)
    assert isinstance(alien.storage("data"), Storage)
    assert isinstance(alien.vault("creds"), Vault)
    assert isinstance(alien.kv("cache"), Kv)
    assert isinstance(alien.queue("tasks"), Queue)
    alien.storage("data").put("k", b"v")
    alien.vault("creds").set_secret("s", "v")
    alien.kv("cache").set("k", "v")
    alien.queue("tasks").send("m")
    assert alien.storage("data").get("k") == b"v"
    assert alien.vault("creds").get_secret("s") == "v"
    assert alien.kv("cache").get("k") == b"v"
    assert alien.queue("tasks").receive()[0].text == "m"
    assert {"storage", "vault", "kv", "queue"} <= set(alien.__all__)


def test_backends_are_cached_per_name(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bind(monkeypatch, tmp_path)
    assert alien.kv("cache") is alien.kv("cache")


def test_changed_environment_is_picked_up(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bind(monkeypatch, tmp_path / "one")
    alien.kv("cache").set("where", "one")
    first = alien.kv("cache")
    bind(monkeypatch, tmp_path / "two")
    assert alien.kv("cache") is not first
    assert alien.kv("cache").get("where") is None
    monkeypatch.delenv("ALIEN_BINDINGS")
    with pytest.raises(BindingError, match="ALIEN_BINDINGS is not set"):
        alien.kv("cache")
    monkeypatch.setenv("ALIEN_BINDINGS", "{}")
    with pytest.raises(BindingError, match="linked: none"):
        alien.kv("cache")


def test_outside_a_platform_the_error_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plain pytest or uvicorn: no ALIEN_BINDINGS at all is not a missing link in the stack."""
    monkeypatch.delenv("ALIEN_BINDINGS", raising=False)
    with pytest.raises(BindingError) as err:
        alien.storage("x")
    assert err.value.message == (
        "resource 'x' is not available: ALIEN_BINDINGS is not set, so this code is not running "
        "under an alien platform (run it with `alien dev`, or set ALIEN_BINDINGS in tests)"
    )
    assert "linked" not in err.value.message


def test_errors_name_the_problem(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bind(monkeypatch, tmp_path)
    with pytest.raises(BindingError, match=r"'nope' is not linked.*linked: cache, creds, data"):
        alien.storage("nope")
    with pytest.raises(BindingError, match="'cache' is a kv, not a queue"):
        alien.queue("cache")
    monkeypatch.setenv("ALIEN_BINDINGS", "{broken")
    with pytest.raises(BindingError, match="ALIEN_BINDINGS is invalid"):
        alien.kv("cache")


async def test_async_use_through_the_sdk(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bind(monkeypatch, tmp_path)
    await alien.kv("cache").aio.set("k", "v")
    assert await alien.kv("cache").aio.get("k") == b"v"
