"""Fixtures for the SDK tests: a clean handler registry for every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from alien.sdk.registry import registry


@pytest.fixture(autouse=True)
def clean_registry() -> Iterator[None]:
    registry.clear()
    yield
    registry.clear()
