"""Fixtures for the SDK tests: a clean handler registry for every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from alien.sdk.registry import registry


@pytest.fixture(autouse=True)
def clean_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An empty registry during the test; the process's own afterwards. Other modules register
    handlers when pytest imports them (``@alien.command`` at module level), and an xdist worker
    may run their tests after these: clearing for good made those handlers unknown."""
    monkeypatch.setattr(registry, "_handlers", {})
    monkeypatch.setattr(registry, "_app", None)
    yield
