"""boto3's data, loaded ahead of the first debug session in a thread of its own.

botocore's endpoint data, boto3 and STS's service model cost about 0.5 s of CPU on first use,
once per process. Whatever of it is not loaded yet, a debug session's set-up waits for: in the
push model the manager's tunnel handshake, in the pull model the agent's upstream (its first
``AssumeRole``). So the processes that will serve sessions load it as soon as they know they
will: the manager when it starts with AWS deployments registered and when one is registered,
the agent when it starts with AWS debugging configured (``debug.json``). Measured: the first
session after a restart took ~0.2 s more set-up than the ones after it, in either model.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from alien.platforms.aws.credentials import load_sts_model
from alien.platforms.aws.endpoints import load_endpoint_data

log = logging.getLogger(__name__)

THREAD_NAME = "alien-aws-prepare"
_prepared = threading.Event()
_preparing = threading.Lock()


def prepare_in_background(wanted: Callable[[], bool] = lambda: True) -> None:
    """Load the data in a thread of its own, once per process, if ``wanted()`` (asked in that
    thread: it may read files)."""
    if _prepared.is_set() or not _preparing.acquire(blocking=False):
        return
    threading.Thread(target=_prepare, args=(wanted,), name=THREAD_NAME, daemon=True).start()


def prepared(timeout: float | None = None) -> bool:
    """Whether the data is loaded (waiting up to ``timeout`` seconds for it)."""
    return _prepared.wait(timeout)


def _prepare(wanted: Callable[[], bool]) -> None:
    try:
        if wanted():
            load_endpoint_data()
            load_sts_model()
            _prepared.set()
    except Exception:  # the first session will load what it needs, and say what failed
        log.warning("could not load boto3's data ahead of the first debug session", exc_info=True)
    finally:
        _preparing.release()
