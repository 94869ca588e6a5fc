"""The platform's side of a function process's command control endpoint.

For every process of a function with commands enabled the platform issues a :class:`ControlGrant`:
a fresh secret (``ALIEN_CONTROL_TOKEN``) and the address to serve on (``ALIEN_CONTROL_ADDRESS``),
both passed in the process's environment at spawn time only — never in ``ProcessSpec`` (which
is compared to decide whether a function must restart) nor in anything logged. The runtime
reports the address it listens on in its ready line (``control=…``); the grant accepts it only
if it is the one granted, and the pair becomes the version's :class:`ControlEndpoint`.

The address is a Unix socket in the area's ``run/`` directory (0700; the socket 0600): only this
user can connect at all, and the token guards it on top. Socket paths are limited to 103 bytes;
an area that deep gets a loopback TCP port instead (still token-guarded), never a socket
outside the area.
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

MAX_UNIX_PATH_BYTES = 103
"""``sun_path`` is 108 bytes on Linux, 104 on macOS (NUL included): stay under both."""
LOOPBACK_TCP = "tcp:127.0.0.1:0"


@dataclass(frozen=True)
class ControlEndpoint:
    """Where one function process takes commands, and the token it wants (never shown)."""

    address: str
    token: str = field(repr=False)

    @property
    def unix_path(self) -> str | None:
        """The socket path of a ``unix:`` address, else ``None``."""
        scheme, _, rest = self.address.partition(":")
        return rest if scheme == "unix" else None

    @property
    def base_url(self) -> str:
        """The HTTP base URL: the TCP address, or a placeholder host for a Unix socket."""
        scheme, _, rest = self.address.partition(":")
        return f"http://{rest}" if scheme == "tcp" else "http://alien-control"


@dataclass(frozen=True)
class ControlGrant:
    """What one process is given: a token and the address to listen on."""

    function: str
    requested: str
    token: str = field(repr=False)

    @classmethod
    def issue(cls, run_dir: Path, function: str) -> ControlGrant:
        socket_path = run_dir / f"{function}-{secrets.token_hex(4)}.sock"
        if len(os.fsencode(socket_path)) <= MAX_UNIX_PATH_BYTES:
            requested = f"unix:{socket_path}"
        else:
            log.info("the area's path is too long for a Unix socket; %s uses loopback", function)
            requested = LOOPBACK_TCP
        return cls(function=function, requested=requested, token=secrets.token_urlsafe(32))

    def environment(self) -> dict[str, str]:
        return {"ALIEN_CONTROL_ADDRESS": self.requested, "ALIEN_CONTROL_TOKEN": self.token}

    def accept(self, reported: str | None) -> ControlEndpoint | None:
        """The endpoint for the address the process reported, if it is the one granted."""
        if reported is None:
            log.warning("function %s did not report a control endpoint", self.function)
            return None
        if reported == self.requested or (
            self.requested == LOOPBACK_TCP and reported.startswith("tcp:127.0.0.1:")
        ):
            return ControlEndpoint(reported, self.token)
        log.warning("function %s reported an unexpected control address", self.function)
        return None

    def release(self) -> None:
        """Remove the socket file once the process is gone (a killed one cannot)."""
        scheme, _, path = self.requested.partition(":")
        if scheme == "unix":
            Path(path).unlink(missing_ok=True)
