"""How a platform hands a function process its endpoint tokens without its environment.

A process's initial environment stays readable in ``/proc/<pid>/environ`` for its whole life
(removing a variable from ``os.environ`` changes Python's copy only), and every process the
function spawns can read its parent's. So the platform writes the tokens (a JSON object,
variable name → value, e.g. ``{"ALIEN_HTTP_TOKEN": "…"}``) into a pipe and lets the runtime
inherit only its read end, whose number is in ``ALIEN_SECRETS_FD``; the runtime reads it once,
before importing app code, and closes it. Shared here because both sides must spell it alike and
neither layer may import the other.
"""

from __future__ import annotations

SECRETS_FD_VARIABLE = "ALIEN_SECRETS_FD"
