"""Vault contract: every backend must pass these unchanged."""

from __future__ import annotations

from typing import Any

import pytest
from contract_support import join_all, open_entry, run_processes, vault_writer

from alien.bindings.base import Vault
from alien.bindings.validate import MAX_SECRET_BYTES
from alien.errors import NotFound, ValidationError


def test_set_get_list_delete(vault: Vault) -> None:
    assert vault.list_secrets() == []
    vault.set_secret("db/password", "s3cr3t")
    vault.set_secret("API_KEY", "k-✓ unicode")
    assert vault.get_secret("db/password") == "s3cr3t"
    assert vault.get_secret("API_KEY") == "k-✓ unicode"
    assert vault.list_secrets() == ["API_KEY", "db/password"]
    vault.set_secret("API_KEY", "rotated")
    assert vault.get_secret("API_KEY") == "rotated"
    assert vault.delete_secret("API_KEY") is True
    assert vault.delete_secret("API_KEY") is False
    assert vault.list_secrets() == ["db/password"]


def test_missing_secret(vault: Vault) -> None:
    with pytest.raises(NotFound) as err:
        vault.get_secret("absent")
    assert err.value.field == "name"
    assert err.value.code == "NOT_FOUND"


def test_empty_value_allowed(vault: Vault) -> None:
    vault.set_secret("empty", "")
    assert vault.get_secret("empty") == ""


@pytest.mark.parametrize("name", ["", "-lead", "has space", "a\x00", "x" * 256, 7])
def test_bad_names(vault: Vault, name: Any) -> None:
    with pytest.raises(ValidationError) as err:
        vault.set_secret(name, "v")
    assert err.value.field == "name"


def test_bad_values_are_refused_without_echoing(vault: Vault) -> None:
    with pytest.raises(ValidationError) as err:
        vault.set_secret("n", b"bytes")  # type: ignore[arg-type]
    assert err.value.field == "value"
    huge = "SECRETVALUE" * (MAX_SECRET_BYTES // 11 + 1)
    with pytest.raises(ValidationError) as err:
        vault.set_secret("n", huge)
    assert "SECRETVALUE" not in str(err.value)
    assert vault.list_secrets() == []


async def test_async_view(vault: Vault) -> None:
    await vault.aio.set_secret("a", "1")
    assert await vault.aio.get_secret("a") == "1"
    assert await vault.aio.list_secrets() == ["a"]
    assert await vault.aio.delete_secret("a") is True


def test_concurrent_writers_lose_nothing(binding: Any) -> None:
    """Processes writing different secrets at once: read-modify-write must not drop any."""
    entry = binding("vault")
    workers, count = 3, 15
    join_all(run_processes(vault_writer, [(entry, w, count) for w in range(workers)]))
    shared = open_entry(entry, Vault)
    names = shared.list_secrets()
    assert len(names) == workers * count
    assert all(shared.get_secret(name) == f"value-{name[1:]}" for name in names)
    shared.close()
