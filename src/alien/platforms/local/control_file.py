"""``run/control.json``: how another process finds the functions' current control endpoints.

``alien dev command`` runs in its own process while ``alien dev`` holds the platform; the
platform publishes, for each function whose current version takes commands, its control
address **and token** here. One file, written atomically (0600, in the 0700 ``run/``), so an
address and its token are always read together; not in ``state.json``, which records what is
provisioned (durable, and read by tools that have no business holding tokens) while this holds
facts that die with the processes::

    {"version": 1, "functions": {"api": {"address": "unix:/…/run/control-1f2e3d4c.sock",
                                         "token": "…", "release": "r2", "pid": 4242}}}

The platform rewrites it whenever a function's current version changes (an update's switch, a
crashed process coming back), drops a function's entry the moment its process dies (on the
loopback fallback another local user could bind the dead process's port and be sent the token)
and removes the file when it stops.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from alien.errors import PlatformError
from alien.platforms.local.area import Area
from alien.platforms.local.endpoints import Endpoint
from alien.platforms.local.files import write_private

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Published:
    """One function's entry: its current endpoint and which process serves it."""

    endpoint: Endpoint
    release: str
    pid: int | None


def publish(area: Area, entries: Mapping[str, Published]) -> None:
    """Replace the file with ``entries`` (an empty mapping removes it)."""
    if not entries:
        area.control_file.unlink(missing_ok=True)
        return
    functions = {
        fid: {
            "address": entry.endpoint.address,
            "token": entry.endpoint.token,
            "release": entry.release,
            "pid": entry.pid,
        }
        for fid, entry in sorted(entries.items())
    }
    data = json.dumps({"version": FORMAT_VERSION, "functions": functions}, indent=2)
    write_private(area.control_file, data.encode() + b"\n")


class AreaControls:
    """The control endpoints an area's platform published, read afresh on every call.

    What ``LocalDispatcher`` uses from a process other than the platform's (``alien dev
    command``); in the platform's own process it takes the ``LocalPlatform`` itself.
    """

    def __init__(self, area: Area) -> None:
        self.area = area

    def control_endpoints(self) -> dict[str, Endpoint]:
        path = self.area.control_file
        try:
            raw = json.loads(path.read_bytes())
            functions = raw["functions"] if raw.get("version") == FORMAT_VERSION else None
            if not isinstance(functions, dict):
                raise ValueError("no 'functions' object of a known version")
            return {
                str(fid): Endpoint(str(entry["address"]), str(entry["token"]))
                for fid, entry in functions.items()
            }
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise PlatformError(f"{path} is unreadable: {exc}", field="area") from exc
