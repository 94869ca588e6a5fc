"""Resolve validated keys to files without ever following a symbolic link.

:mod:`alien.bindings.keys` guarantees a key is lexically inside its bucket. That is not enough
on a real filesystem: a symlink planted inside the bucket (``objects/a -> /etc``) would turn
the harmless key ``a/passwd`` into a read of ``/etc/passwd``. Checking ``realpath`` first
leaves a race between the check and the use, so instead every path component is opened
relative to its parent's descriptor with ``O_NOFOLLOW`` (``openat``): what is opened is what
was checked, and a symlink anywhere on the way is refused.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

from alien.bindings.local.fsutil import PRIVATE_DIR

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class PathBlocked(Exception):
    """A path component is a symlink (``"symlink"``) or a non-directory (``"file"``)."""

    def __init__(self, reason: Literal["symlink", "file"], depth: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.depth = depth


def _blocked_reason(dir_fd: int, name: str) -> Literal["symlink", "file"]:
    mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
    return "symlink" if stat.S_ISLNK(mode) else "file"


def open_subdir(dir_fd: int, name: str, *, create: bool = False, depth: int = 0) -> int:
    """Open directory ``name`` inside ``dir_fd`` (creating it if asked), refusing symlinks."""
    for _ in range(2):
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError:
            if not create:
                raise
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, PRIVATE_DIR, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise PathBlocked(_blocked_reason(dir_fd, name), depth) from None
            raise
    return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)


@contextlib.contextmanager
def dir_chain(root: Path, names: Sequence[str], *, create: bool = False) -> Iterator[list[int]]:
    """Descriptors for ``root`` and each directory ``names[i]`` below it; closed on exit.

    ``root`` itself may be reached through symlinks (it comes from the platform, not from a
    key); everything below it may not.
    """
    fds = [os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)]
    try:
        for depth, name in enumerate(names):
            fds.append(open_subdir(fds[-1], name, create=create, depth=depth))
        yield fds
    finally:
        for fd in reversed(fds):
            os.close(fd)


def open_regular(dir_fd: int, name: str, *, depth: int = 0) -> int:
    """Open regular file ``name`` in ``dir_fd`` for reading; FileNotFoundError if absent.

    A directory of that name counts as absent (it is a key prefix, not an object).
    """
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise PathBlocked("symlink", depth) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise FileNotFoundError(errno.ENOENT, "not a regular file", name)
    return fd


def lstat_regular(dir_fd: int, name: str) -> os.stat_result | None:
    """``lstat`` of ``name`` if it is a regular file, else ``None``."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    return st if stat.S_ISREG(st.st_mode) else None
