"""The platform's side of a function process's endpoints: its HTTP app and its command control.

For every process the platform issues a :class:`Grant` per endpoint: a fresh secret and the
address to serve on (``ALIEN_HTTP_ADDRESS``/``ALIEN_HTTP_TOKEN``, ``ALIEN_CONTROL_ADDRESS``/
``ALIEN_CONTROL_TOKEN``), given at spawn time only — the address in the process's environment,
the token through its secrets pipe (``alien.protocol.runtime_secrets``), never in its environment
(readable in ``/proc`` for its whole life), in ``ProcessSpec`` (which is compared to decide
whether a function must restart) nor in anything logged. The runtime reports the addresses it
listens on in its ready line (``http=…``, ``control=…``); a grant accepts only the one it
granted, and the pair becomes the process's :class:`Endpoint`. The platform's callers connect
only through these: the ingress proxy to the app (``proxy.Backend``), the dispatcher to the
control API (``control_client``).

The address is a Unix socket in the area's ``run/`` directory (0700; the socket 0600): only this
user can connect at all, and the token guards it on top. Socket paths are limited to 103 bytes,
so the names are short and of fixed length (``<kind>-<hex>.sock``, not the function's id, which
may be 63 characters): an area path up to 77 bytes always fits. A deeper area gets a loopback TCP
port instead, never a socket outside the area — reachable by every local process, so there the
token is all that keeps them out.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

MAX_UNIX_PATH_BYTES = 103
"""``sun_path`` is 108 bytes on Linux, 104 on macOS (NUL included): stay under both."""
LOOPBACK_TCP = "tcp:127.0.0.1:0"
_BOUND_LOOPBACK = re.compile(r"tcp:127\.0\.0\.1:(?P<port>[1-9][0-9]{0,4})")
"""What a process granted ``LOOPBACK_TCP`` may report: that host and a port, nothing more. A
looser prefix test would take ``tcp:127.0.0.1:1@example.com:80``, which an HTTP client reads as
host ``example.com``."""


def _bound_loopback(address: str) -> bool:
    match = _BOUND_LOOPBACK.fullmatch(address)
    return match is not None and int(match["port"]) <= 65535


@dataclass(frozen=True)
class EndpointKind:
    """What an endpoint serves (its name, also its sockets'), its environment variables' prefix,
    and whether a process given one must serve it (an HTTP app is optional, commands are not)."""

    name: str
    variables: str
    required: bool


HTTP = EndpointKind("http", "ALIEN_HTTP", required=False)
CONTROL = EndpointKind("control", "ALIEN_CONTROL", required=True)


@dataclass(frozen=True)
class Endpoint:
    """Where one function process serves, and the token it wants (never shown)."""

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
        return f"http://{rest}" if scheme == "tcp" else "http://localhost"


@dataclass(frozen=True)
class Grant:
    """What one process is given for one endpoint: a token and the address to listen on."""

    kind: EndpointKind
    function: str
    requested: str
    token: str = field(repr=False)

    @classmethod
    def issue(cls, kind: EndpointKind, run_dir: Path, function: str) -> Grant:
        socket_path = run_dir / f"{kind.name}-{secrets.token_hex(4)}.sock"
        if len(os.fsencode(socket_path)) <= MAX_UNIX_PATH_BYTES:
            requested = f"unix:{socket_path}"
        else:
            log.info(
                "the area's path is too long for a Unix socket; %s's %s uses loopback",
                function,
                kind.name,
            )
            requested = LOOPBACK_TCP
        return cls(kind, function, requested, secrets.token_urlsafe(32))

    def environment(self) -> dict[str, str]:
        """The address to serve on, for the process's environment."""
        return {f"{self.kind.variables}_ADDRESS": self.requested}

    def secrets(self) -> dict[str, str]:
        """The token, for the process's secrets pipe (never its environment)."""
        return {f"{self.kind.variables}_TOKEN": self.token}

    def accept(self, reported: str | None) -> Endpoint | None:
        """The endpoint for the address the process reported, if it is the one granted."""
        if reported is None:
            if self.kind.required:
                log.warning("function %s reported no %s endpoint", self.function, self.kind.name)
            return None
        if self.requested == LOOPBACK_TCP:
            granted = _bound_loopback(reported)  # the port it bound, not 0
        else:
            granted = reported == self.requested
        if granted:
            return Endpoint(reported, self.token)
        log.warning("function %s reported an unexpected %s address", self.function, self.kind.name)
        return None

    def release(self) -> None:
        """Remove the socket file once the process is gone (a killed one cannot)."""
        scheme, _, path = self.requested.partition(":")
        if scheme == "unix":
            Path(path).unlink(missing_ok=True)
