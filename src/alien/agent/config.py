"""Knobs of the agent process, with defaults suited to a fleet (``alien-deploy up`` flags)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from alien import __version__
from alien.errors import ValidationError

AGENT_VERSION = f"alien-deploy/{__version__}"
STATE_DIR_ENV = "ALIEN_DEPLOY_STATE_DIR"

Transport = Literal["auto", "websocket", "poll"]
TRANSPORTS: tuple[Transport, ...] = ("auto", "websocket", "poll")


def default_state_dir() -> Path:
    return Path(os.environ.get(STATE_DIR_ENV) or Path.home() / ".alien" / "deploy")


@dataclass(frozen=True)
class AgentConfig:
    """How the agent talks to the manager.

    ``transport``: ``auto`` tries the WebSocket and falls back to HTTPS long-polling when it cannot
    be established (retrying the WebSocket every ``websocket_retry`` seconds); ``websocket`` and
    ``poll`` force one. Reconnects wait ``reconnect_base`` doubling up to ``reconnect_max``
    seconds, with jitter, so a fleet does not reconnect in lockstep after a manager restart.
    ``status_interval``: how often ``status.json`` and the detail sent to the manager are
    refreshed (crashed and restarted functions show up within that time).
    ``command_concurrency``: how many remote commands run at once (more wait for a slot).
    ``command_tracebacks``: the customer's opt-in to let a failed handler's traceback leave the
    environment in the command's failure details (off: type and message only).
    """

    transport: Transport = "auto"
    reconnect_base: float = 0.5
    reconnect_max: float = 30.0
    websocket_retry: float = 300.0
    poll_wait: float = 25.0
    open_timeout: float = 10.0
    status_interval: float = 2.0
    heartbeat_default: float = 15.0
    command_concurrency: int = 64
    command_tracebacks: bool = False

    def __post_init__(self) -> None:
        if self.transport not in TRANSPORTS:
            raise ValidationError(
                f"transport must be one of {', '.join(TRANSPORTS)}", field="transport"
            )
        if not 0 < self.reconnect_base <= self.reconnect_max:
            raise ValidationError("reconnect delays need 0 < base <= max", field="reconnect_max")
        if self.command_concurrency < 1:
            raise ValidationError("command concurrency must be at least 1", field="concurrency")
        if self.poll_wait <= 0 or self.poll_wait > 60:
            raise ValidationError("poll wait must be in (0, 60] seconds", field="poll_wait")
