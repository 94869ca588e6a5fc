"""Binding configs of the local platform, as they appear in ``ALIEN_BINDINGS``.

Paths must be absolute: a function process runs with its code directory as working
directory, so a relative path would silently name a different file per function.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from alien.bindings.base import MAX_VISIBILITY_TIMEOUT


def _absolute(path: Path) -> Path:
    if not path.is_absolute():
        raise ValueError(f"path must be absolute, got {str(path)!r}")
    return path


AbsolutePath = Annotated[Path, AfterValidator(_absolute)]


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LocalStorageConfig(_Config):
    path: AbsolutePath
    """The bucket directory (objects live in ``objects/`` inside it)."""
    events: AbsolutePath | None = None
    """A local queue db that receives a :class:`~alien.bindings.events.StorageEvent` per change."""


class LocalVaultConfig(_Config):
    path: AbsolutePath
    """The encrypted vault file."""
    key_file: AbsolutePath
    """The 32-byte AES key; created (0600) if absent. Must live apart from the data."""


class LocalKvConfig(_Config):
    path: AbsolutePath
    """The SQLite database file."""


class LocalQueueConfig(_Config):
    path: AbsolutePath
    """The SQLite database file."""
    visibility_timeout: float = Field(default=30.0, ge=0, le=MAX_VISIBILITY_TIMEOUT)
    """Default seconds a received message stays hidden (the manifest's queue config)."""
