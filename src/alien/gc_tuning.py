"""Fewer and cheaper runs of Python's cycle collector in our long-running processes.

Why: under a steady load of remote commands the agent spent 13% of its CPU in the cycle collector
and the manager 4-8% (measured with ``gc.callbacks``, 5,000 no-op commands, 64 at a time). Two
defaults cost that. The young generation is collected every 700 net container allocations: a
command's few thousand short-lived dicts, models and frames trigger it many times over, each run
finding next to nothing (their objects die by reference counting). And a full collection walks
every object alive — ~190,000 in the manager once started (modules, classes, the app's routes,
SQLAlchemy's metadata, pydantic's schemas) — ~90 ms, however little changed.

:func:`collect_less` raises the young threshold to :data:`YOUNG_THRESHOLD` (cyclic garbage still
goes, a few thousand objects later). :func:`freeze_start_up` — called once a process has started
(imports done, app built) — moves what exists then into the permanent generation: it lives as
long as the process and is never walked again. Garbage made after that is collected as before.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000
"""Net container allocations between two young collections (CPython's default: 700)."""
OLDER_THRESHOLDS = (20, 20)
"""Young collections per middle one, middle ones per full one (default: 10 and 10)."""


def collect_less() -> None:
    """Raise the collector's thresholds (first thing in a process)."""
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)


def freeze_start_up() -> None:
    """Collect once, then exempt every object alive now from later collections."""
    gc.collect()
    gc.freeze()
