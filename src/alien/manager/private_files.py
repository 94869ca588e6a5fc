"""A secret the manager keeps in its data dir: made once, 0600, read back on every later start."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def read_or_create(path: Path, make: Callable[[], bytes]) -> bytes:
    """The bytes of ``path``; if it does not exist, ``make()``'s, written there first (0600,
    created exclusively and without following a link, so two starts never write two secrets)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return path.read_bytes()
    data = make()
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return data
