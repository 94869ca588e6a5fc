"""Call one handler for one trigger payload, and never let its failure escape.

A handler that raises must not take the process (and with it the HTTP app and every other
trigger) down: the failure is logged with what identifies the delivery, never with the payload
itself, which may hold customer data or secrets. The boolean result tells the caller whether to
acknowledge (queue messages are acked only on success).
"""

from __future__ import annotations

import logging
import time

from alien.sdk.registry import Handler

log = logging.getLogger("alien.runtime")


async def dispatch(handler: Handler, payload: object, what: str) -> bool:
    """Run ``handler(payload)``; ``True`` if it returned, ``False`` if it raised.

    ``what`` names the delivery in logs (e.g. ``message 3f2a… attempt 2``), never its content.
    """
    started = time.perf_counter()
    try:
        await handler.call(payload)
    except Exception:
        log.exception("%s handler %s failed on %s", handler.kind, handler.qualname, what)
        return False
    log.debug(
        "%s handler %s handled %s in %.3fs",
        handler.kind,
        handler.qualname,
        what,
        time.perf_counter() - started,
    )
    return True
