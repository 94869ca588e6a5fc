"""Durable, crash-safe file operations for the local backends (POSIX).

Every file the local backends rewrite is replaced with *write temp file, fsync, rename, fsync
directory*: after a crash a reader finds the old content or the new one, never a torn file.
Cross-process exclusion uses ``flock`` on a dedicated lock file (each acquisition opens its
own descriptor, so threads of one process exclude each other too).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def ensure_dir(path: Path) -> None:
    """Create ``path`` and missing parents, owner-only."""
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)


def fsync_dir(path: Path) -> None:
    """Make a rename/creation in directory ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_temp(directory: Path, data: bytes, mode: int) -> Path:
    temp = directory / f".{secrets.token_hex(8)}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)  # the umask may have narrowed or (never) widened it
        with os.fdopen(fd, "wb", closefd=False) as out:
            out.write(data)
            out.flush()
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        temp.unlink(missing_ok=True)
        raise
    os.close(fd)
    return temp


def write_atomic(path: Path, data: bytes, mode: int = PRIVATE_FILE) -> None:
    """Replace ``path`` with ``data`` atomically and durably, with permissions ``mode``."""
    temp = _write_temp(path.parent, data, mode)
    try:
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def create_exclusive(path: Path, data: bytes, mode: int = PRIVATE_FILE) -> bool:
    """Create ``path`` with ``data`` only if it does not exist; ``True`` if this call did.

    The file appears complete or not at all (hard-link of a finished temp file), so a
    concurrent reader never sees it empty, and of racing creators exactly one wins.
    """
    temp = _write_temp(path.parent, data, mode)
    try:
        os.link(temp, path)
    except FileExistsError:
        return False
    finally:
        temp.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return True


@contextlib.contextmanager
def file_lock(path: Path, *, shared: bool = False) -> Iterator[None]:
    """Hold an exclusive (or shared) advisory lock on ``path`` for the ``with`` block."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, PRIVATE_FILE)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the lock
