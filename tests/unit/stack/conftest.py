"""Shared fixtures: the example stack of docs/ARCHITECTURE.md and an app directory for it."""

from __future__ import annotations

from pathlib import Path

import pytest

import alien

from .samples import architecture_stack


@pytest.fixture
def stack() -> alien.Stack:
    return architecture_stack()


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    """An app directory with the example's code directory."""
    (tmp_path / "api").mkdir()
    (tmp_path / "api" / "app.py").write_text("app = None\n")
    return tmp_path
