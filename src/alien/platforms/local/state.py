"""``state.json``: what the area has provisioned and which release runs there.

The file is the platform's memory across restarts (of ``alien dev``, of the agent): without it a
restarted platform could not tell a FROZEN resource it created last week (never touch) from one
it has never seen (create), nor offer the same ingress port again. Written atomically (temp file
+ rename) so a crash mid-write leaves the previous state, never half a file.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from pydantic import ValidationError as PydanticValidationError

from alien.errors import PlatformError
from alien.platforms.local.files import write_private


def utcnow() -> datetime:
    return datetime.now(UTC)


class ResourceRecord(BaseModel):
    """A provisioned resource as it was last applied."""

    kind: str
    lifecycle: str
    config: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class AreaState(BaseModel):
    """The whole of ``state.json``."""

    state_version: int = 1
    stack: str | None = None
    release: str | None = None
    previous_release: str | None = None
    resources: dict[str, ResourceRecord] = Field(default_factory=dict)
    ingress_ports: dict[str, int] = Field(default_factory=dict)
    updated_at: datetime = Field(default_factory=utcnow)


def load_state(path: Path) -> AreaState:
    """Read the state, or an empty one if the area is new."""
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return AreaState()
    except OSError as exc:
        raise PlatformError(f"cannot read {path}: {exc}", field="state") from exc
    try:
        return AreaState.model_validate(json.loads(raw))
    except (ValueError, PydanticValidationError) as exc:
        raise PlatformError(f"{path} is corrupt: {exc}", field="state") from exc


def save_state(path: Path, state: AreaState) -> None:
    """Write the state atomically (0600: it names every resource path of the deployment)."""
    state.updated_at = utcnow()
    data = json.dumps(state.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"
    write_private(path, data.encode("utf-8"))
