"""Which function of a deployment runs a command, decided when the command is created.

The deployment's *current* release manifest says which functions have ``commands_enabled``:

* none (or nothing runs yet) → 409 ``NO_COMMAND_TARGET``;
* exactly one → it is the target, the caller need not name it;
* several → the caller must name one (422 ``TARGET_REQUIRED``, listing them);
* a named target that is not one of them → 422 ``TARGET_AMBIGUOUS``, listing them.

When the agent reported the command names each function registered (``status.detail
["commands"]``, :func:`alien.protocol.agent_channel.known_commands`), a name the target does not
know is refused at once with 422 ``UNKNOWN_COMMAND`` listing the known ones, instead of failing
after a round trip to the customer's environment.

Releases are immutable, so the command-enabled functions of each release are parsed once and
cached (bounded) — creating a command does not re-parse a manifest.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from alien.errors import Conflict, ValidationError
from alien.platforms.dispatch import choose_target as platform_choice
from alien.platforms.dispatch import command_targets
from alien.protocol.agent_channel import known_commands
from alien.protocol.command_messages import NO_COMMAND_TARGET, UNKNOWN_COMMAND
from alien.stack import manifest_from_json

_CACHE_SIZE = 1024


class TargetCache:
    """Command-enabled function ids per release id (thread-safe, least recently used out)."""

    def __init__(self, size: int = _CACHE_SIZE) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._functions: OrderedDict[str, tuple[str, ...]] = OrderedDict()

    def functions(self, release_id: str, manifest_json: Any) -> tuple[str, ...]:
        """The sorted ids of ``release_id``'s functions with commands enabled.

        ``manifest_json`` is a callable returning the release's manifest text, called only on a
        cache miss (so a hit costs no database read).
        """
        with self._lock:
            cached = self._functions.get(release_id)
            if cached is not None:
                self._functions.move_to_end(release_id)
                return cached
        found = tuple(command_targets(manifest_from_json(manifest_json())))
        with self._lock:
            self._functions[release_id] = found
            while len(self._functions) > self._size:
                self._functions.popitem(last=False)
        return found


def choose_target(
    *,
    deployment: str,
    functions: tuple[str, ...] | None,
    requested: str | None,
    command: str,
    detail: dict[str, Any] | None,
) -> str:
    """The function to run ``command`` on: the platforms' rule
    (:func:`alien.platforms.dispatch.choose_target`), then the agent's list of known commands.

    ``functions`` is ``None`` when the deployment runs no release yet.
    """
    if functions is None:
        raise Conflict(
            f"deployment {deployment} runs no release yet; nothing can run commands there",
            field="deployment",
            code=NO_COMMAND_TARGET,
        )
    target = platform_choice(functions, requested, where=f"deployment {deployment}")
    _check_known(target, command, detail)
    return target


def _check_known(target: str, command: str, detail: dict[str, Any] | None) -> None:
    try:
        known = known_commands(detail)
    except ValueError:  # validated on the way in; a malformed old row just cannot help
        return
    if known is None or target not in known or command in known[target]:
        return
    names = known[target]
    raise ValidationError(
        f"function {target} has no command {command!r}; known commands: "
        + (", ".join(names) if names else "none"),
        field="command",
        code=UNKNOWN_COMMAND,
        details={"known": list(names), "target": target},
    )
