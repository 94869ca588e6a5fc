"""The one rule every platform's permission derivation follows.

The management identity (what the vendor's control plane acts as inside a customer environment)
may *monitor* every resource of its stack and *update* only the ``live`` ones. It never gets
data-plane access (objects, secret values, items, messages) and nothing outside the stack.
"""

from __future__ import annotations

from alien.stack.kinds import Lifecycle

MONITOR = "monitor"
UPDATE = "update"


def levels(lifecycle: Lifecycle) -> tuple[str, ...]:
    """Access levels for a resource: frozen ones are only monitored, live ones also updated."""
    return (MONITOR, UPDATE) if lifecycle == Lifecycle.LIVE else (MONITOR,)
