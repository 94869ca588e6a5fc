"""Knobs of remote commands, read from ``ALIEN_COMMAND_*`` environment variables.

Kept apart from :class:`~alien.manager.settings.ManagerSettings` so the commands subsystem owns
its configuration; the defaults suit production, tests shorten the lease to see it expire.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from alien.errors import ValidationError

DEFAULT_LEASE_SECONDS = 30.0
DEFAULT_TIMEOUT_SECONDS = 300.0
MAX_TIMEOUT_SECONDS = 7 * 24 * 3600.0
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_MAX_PAYLOAD_BYTES = 2 * 1024**3
CALLER_URL_SECONDS = 900.0
DEFAULT_PAYLOAD_RETENTION = 7 * 24 * 3600.0
DEFAULT_COMMAND_RETENTION = 30 * 24 * 3600.0


@dataclass(frozen=True)
class CommandSettings:
    """``lease_seconds``: how long a delivery may run without renewing (offer and lease alike).
    ``default_timeout``: a command's deadline when the caller gives none. ``max_payload_bytes``:
    the largest params or result document accepted through the blob store. ``caller_url_seconds``:
    how long a signed result URL handed to a caller stays valid. ``payload_retention``: how long
    large params and results are kept after their command ended; ``command_retention``: how long
    an ended command is kept (``commands.retention``)."""

    lease_seconds: float = DEFAULT_LEASE_SECONDS
    default_timeout: float = DEFAULT_TIMEOUT_SECONDS
    max_timeout: float = MAX_TIMEOUT_SECONDS
    default_max_attempts: int = DEFAULT_MAX_ATTEMPTS
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    caller_url_seconds: float = CALLER_URL_SECONDS
    payload_retention: float = DEFAULT_PAYLOAD_RETENTION
    command_retention: float = DEFAULT_COMMAND_RETENTION

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> CommandSettings:
        """``ALIEN_COMMAND_LEASE_SECONDS``, ``ALIEN_COMMAND_DEFAULT_TIMEOUT``,
        ``ALIEN_COMMAND_MAX_PAYLOAD_BYTES``, ``ALIEN_COMMAND_PAYLOAD_RETENTION``,
        ``ALIEN_COMMAND_RETENTION`` (seconds); unset or empty means the default."""
        env = os.environ if env is None else env
        return cls(
            lease_seconds=_positive(env, "ALIEN_COMMAND_LEASE_SECONDS", DEFAULT_LEASE_SECONDS),
            default_timeout=_positive(
                env, "ALIEN_COMMAND_DEFAULT_TIMEOUT", DEFAULT_TIMEOUT_SECONDS
            ),
            max_payload_bytes=int(
                _positive(env, "ALIEN_COMMAND_MAX_PAYLOAD_BYTES", DEFAULT_MAX_PAYLOAD_BYTES)
            ),
            payload_retention=_positive(
                env, "ALIEN_COMMAND_PAYLOAD_RETENTION", DEFAULT_PAYLOAD_RETENTION
            ),
            command_retention=_positive(env, "ALIEN_COMMAND_RETENTION", DEFAULT_COMMAND_RETENTION),
        )


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValidationError(f"{name} must be a number, got {raw!r}", field=name) from None
    if not value > 0:
        raise ValidationError(f"{name} must be positive", field=name)
    return value
