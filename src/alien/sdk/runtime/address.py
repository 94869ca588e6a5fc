"""Where the runtime listens for its platform: ``ALIEN_HTTP_ADDRESS`` (the app) and
``ALIEN_CONTROL_ADDRESS`` (the command control endpoint); see ARCHITECTURE.md.

Two forms, chosen by the platform:

* ``unix:<absolute path>`` — a Unix socket, created 0600 inside a 0700 directory of the platform's.
  The preferred form: file permissions keep every other local user from even connecting (a
  loopback port is reachable by any process on the machine, so only the token would stand in the
  way), no port is consumed, and nothing is exposed on any network interface.
* ``tcp:<loopback ip>:<port>`` — a loopback TCP port (``0``: any free one, reported in the ready
  line). For platforms without a private directory, or a socket path over the OS limit (Unix
  socket paths are at most 103 bytes portably). Only loopback addresses are accepted: these
  endpoints are never reachable from another machine.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from alien.errors import ValidationError

MAX_UNIX_PATH_BYTES = 103
"""``sun_path`` holds 108 bytes on Linux and 104 on macOS, NUL included: stay under both."""


@dataclass(frozen=True)
class ListenAddress:
    """A parsed address: a socket ``path``, or a ``host`` and ``port``."""

    path: Path | None = None
    host: str | None = None
    port: int = 0

    @property
    def is_unix(self) -> bool:
        return self.path is not None

    def __str__(self) -> str:
        if self.path is not None:
            return f"unix:{self.path}"
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"tcp:{host}:{self.port}"


def parse_listen_address(value: str, variable: str) -> ListenAddress:
    """Parse ``unix:<path>`` or ``tcp:<ip>:<port>``; ``ValidationError`` naming ``variable``."""
    scheme, sep, rest = value.partition(":")
    if sep and scheme == "unix":
        return _unix(rest, variable)
    if sep and scheme == "tcp":
        return _tcp(rest, variable)
    raise ValidationError(
        f"{variable} {value!r} must be 'unix:<absolute path>' or 'tcp:<loopback ip>:<port>'",
        field=variable,
    )


def _unix(raw: str, variable: str) -> ListenAddress:
    path = Path(raw)
    if not path.is_absolute():
        raise ValidationError(
            f"{variable}: the socket path {raw!r} is not absolute", field=variable
        )
    if len(os.fsencode(raw)) > MAX_UNIX_PATH_BYTES:
        raise ValidationError(
            f"{variable}: the socket path is over {MAX_UNIX_PATH_BYTES} bytes; use a shorter "
            "path or a tcp: address",
            field=variable,
        )
    return ListenAddress(path=path)


def _tcp(raw: str, variable: str) -> ListenAddress:
    host, sep, port_text = raw.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        loopback = ipaddress.ip_address(host).is_loopback
        port = int(port_text)
    except ValueError:
        loopback, port = False, -1
    if not sep or not loopback:
        raise ValidationError(
            f"{variable}: {raw!r} is not a loopback IP address and port", field=variable
        )
    if not 0 <= port <= 65535:
        raise ValidationError(f"{variable}: {port_text!r} is not a port number", field=variable)
    return ListenAddress(host=host, port=port)
