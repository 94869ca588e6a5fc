"""Unique names, so tests sharing one manager (or one database) never collide."""

from __future__ import annotations

import secrets


def unique(prefix: str) -> str:
    """A name no other test uses, valid as a group or deployment name (a DNS label)."""
    return f"{prefix}-{secrets.token_hex(4)}"
