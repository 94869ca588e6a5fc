"""Local storage: objects as plain files under ``<bucket>/objects/<key>``.

Bucket directory layout (owned by this module)::

    objects/<key>                  the bytes, one file per object, at the key's path
    meta/<h[:2]>/<h>.json          etag + content type, h = sha256(key); fixed-length names
    tmp/                           temp files, renamed into place (same filesystem)
    lock                           flock: orders renames, sidecars and events between writers

Safety: keys are validated by :mod:`alien.bindings.keys` and resolved with
:mod:`.nofollow`, so no key reaches a file outside ``objects/``, even through a planted
symlink. Writes stream into a temp file (fsync) and are renamed into place under the lock,
so readers see the old or the new object, never a partial one.

The sidecar records the object's inode, size and mtime; if they do not match the object
(a crash between the two renames), the sidecar is ignored and the etag recomputed.

Limitation of a path-per-key layout: ``a`` and ``a/b`` cannot both be objects (``a`` would
have to be a file and a directory); such a put raises :class:`~alien.errors.Conflict`.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import secrets
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from alien.bindings.base import ObjectInfo, Storage
from alien.bindings.events import EventName, StorageEvent
from alien.bindings.keys import validate_key
from alien.bindings.local.config import LocalStorageConfig
from alien.bindings.local.fsutil import PRIVATE_FILE, ensure_dir, file_lock
from alien.bindings.local.nofollow import (
    PathBlocked,
    dir_chain,
    lstat_regular,
    open_regular,
    open_subdir,
)
from alien.bindings.local.queue import LocalQueue
from alien.bindings.payload import default_content_type
from alien.errors import Conflict, InvalidKey

_OBJECTS, _META, _TMP = "objects", "meta", "tmp"
_TEMP_MAX_AGE = 24 * 3600


def _split(key: str) -> tuple[list[str], str]:
    *dirs, name = key.split("/")
    return dirs, name


def _meta_location(key: str) -> tuple[str, str]:
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
    return digest[:2], f"{digest}.json"


def _stamp(st: os.stat_result) -> dict[str, int]:
    return {"ino": st.st_ino, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _symlink_refused(key: str) -> InvalidKey:
    return InvalidKey(
        f"invalid key {key!r}: it resolves through a symbolic link in the bucket", field="key"
    )


class LocalStorage(Storage):
    def __init__(self, resource_id: str, path: Path, *, events: Path | None = None) -> None:
        self.id = resource_id
        self._root = path
        self._events_path = events
        self._events: LocalQueue | None = None
        for sub in (_OBJECTS, _META, _TMP):
            ensure_dir(path / sub)
        self._sweep_temp()

    @classmethod
    def from_config(cls, resource_id: str, config: LocalStorageConfig) -> LocalStorage:
        return cls(resource_id, config.path, events=config.events)

    # -- helpers ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _object_dirs(self, key: str, *, create: bool = False) -> Iterator[list[int] | None]:
        """Descriptors down to the directory holding ``key``'s file; None if it can't exist."""
        dirs, _ = _split(key)
        with contextlib.ExitStack() as stack:
            fds: list[int] | None
            try:
                fds = stack.enter_context(dir_chain(self._root, [_OBJECTS, *dirs], create=create))
            except PathBlocked as blocked:
                if blocked.reason == "symlink":
                    raise _symlink_refused(key) from None
                if create:
                    blocker = "/".join(dirs[: blocked.depth])
                    raise _conflict(key, f"{blocker!r} is an object") from None
                fds = None
            except FileNotFoundError:
                if create:
                    raise
                fds = None
            yield fds

    def _sweep_temp(self) -> None:
        """Remove temp files a crashed writer left behind (older than a day), in ``tmp/`` as
        opened without following a symlink: a link put in its place (by anything that can
        write in the bucket) must not turn the sweep on another directory."""
        cutoff = datetime.now(UTC).timestamp() - _TEMP_MAX_AGE
        with contextlib.ExitStack() as stack:
            try:
                tmp_fd = stack.enter_context(dir_chain(self._root, [_TMP]))[-1]
            except (PathBlocked, FileNotFoundError):
                return  # not a directory of ours: nothing of ours to sweep
            with os.scandir(tmp_fd) as entries:
                for entry in entries:
                    with contextlib.suppress(FileNotFoundError):
                        if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                            os.unlink(entry.name, dir_fd=tmp_fd)

    @staticmethod
    def _write_temp(
        tmp_fd: int, chunks: Iterator[bytes], hasher: Any = None
    ) -> tuple[str, os.stat_result]:
        """Stream ``chunks`` into a new durable temp file in ``tmp/``; its name and stat."""
        name = f"{secrets.token_hex(12)}.part"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(name, flags, PRIVATE_FILE, dir_fd=tmp_fd)
        try:
            with os.fdopen(fd, "wb", closefd=False) as out:
                for chunk in chunks:
                    out.write(chunk)
                    if hasher is not None:
                        hasher.update(chunk)
            os.fsync(fd)
            return name, os.fstat(fd)
        except BaseException:
            os.unlink(name, dir_fd=tmp_fd)
            raise
        finally:
            os.close(fd)

    def _info(self, key: str, dir_fd: int, st: os.stat_result) -> ObjectInfo:
        """Build ObjectInfo from the sidecar, or by reading the object if the sidecar is stale."""
        meta = self._read_meta(key)
        if (
            meta is not None
            and meta.get("key") == key
            and all(meta.get(k) == v for k, v in _stamp(st).items())
        ):
            etag, content_type = str(meta["etag"]), meta.get("content_type")
        else:
            etag, content_type = self._etag_of(dir_fd, key), default_content_type(key, b"")
        return ObjectInfo(
            key=key,
            size=st.st_size,
            modified=datetime.fromtimestamp(st.st_mtime_ns / 1e9, UTC),
            etag=etag,
            content_type=content_type,
        )

    def _read_meta(self, key: str) -> dict[str, Any] | None:
        fanout, name = _meta_location(key)
        try:
            with dir_chain(self._root, [_META, fanout]) as fds:
                fd = open_regular(fds[-1], name)
        except (FileNotFoundError, PathBlocked):
            return None
        with os.fdopen(fd, "rb") as stream:
            try:
                meta = json.load(stream)
            except ValueError:
                return None
        return meta if isinstance(meta, dict) else None

    def _etag_of(self, dir_fd: int, key: str) -> str:
        _, name = _split(key)
        hasher = hashlib.md5(usedforsecurity=False)
        with os.fdopen(open_regular(dir_fd, name), "rb") as stream:
            while chunk := stream.read(1 << 20):
                hasher.update(chunk)
        return hasher.hexdigest()

    def _emit(self, event: EventName, key: str, size: int) -> None:
        if self._events_path is None:
            return
        if self._events is None:
            self._events = LocalQueue(self._events_path)
        record = StorageEvent(event, self.id, key, size, datetime.now(UTC))
        self._events.send(record.to_json())

    # -- Storage ------------------------------------------------------------------------------

    def _put(self, key: str, chunks: Iterator[bytes], content_type: str) -> ObjectInfo:
        _, name = _split(key)
        fanout, meta_name = _meta_location(key)
        hasher = hashlib.md5(usedforsecurity=False)
        with dir_chain(self._root, [_TMP]) as (_, tmp_fd):
            temp, st = self._write_temp(tmp_fd, chunks, hasher)
            info = ObjectInfo(
                key=key,
                size=st.st_size,
                modified=datetime.fromtimestamp(st.st_mtime_ns / 1e9, UTC),
                etag=hasher.hexdigest(),
                content_type=content_type,
            )
            meta = {"key": key, "etag": info.etag, "content_type": content_type, **_stamp(st)}
            meta_temp, _ = self._write_temp(tmp_fd, iter([json.dumps(meta).encode()]))
            try:
                with (
                    file_lock(self._root / "lock"),
                    self._object_dirs(key, create=True) as fds,
                    dir_chain(self._root, [_META, fanout], create=True) as meta_fds,
                ):
                    assert fds is not None  # create=True never yields None
                    if _is_dir(fds[-1], name):
                        raise _conflict(key, "keys below it exist")
                    # Sidecar first: a crash in between leaves a sidecar whose stamp does
                    # not match the old object, which readers detect and ignore.
                    os.rename(meta_temp, meta_name, src_dir_fd=tmp_fd, dst_dir_fd=meta_fds[-1])
                    os.rename(temp, name, src_dir_fd=tmp_fd, dst_dir_fd=fds[-1])
                    for fd in (meta_fds[-1], *fds[1:]):
                        os.fsync(fd)
                    self._emit("put", key, st.st_size)
            finally:
                for leftover in (temp, meta_temp):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(leftover, dir_fd=tmp_fd)
        return info

    def _open(self, key: str) -> BinaryIO:
        _, name = _split(key)
        with self._object_dirs(key) as fds:
            if fds is not None:
                try:
                    return os.fdopen(open_regular(fds[-1], name), "rb")
                except PathBlocked:
                    raise _symlink_refused(key) from None
                except FileNotFoundError:
                    pass
        raise self.missing(key)

    def _head(self, key: str) -> ObjectInfo | None:
        _, name = _split(key)
        with file_lock(self._root / "lock", shared=True), self._object_dirs(key) as fds:
            if fds is None or (st := lstat_regular(fds[-1], name)) is None:
                return None
            return self._info(key, fds[-1], st)

    def _delete(self, key: str) -> bool:
        dirs, name = _split(key)
        fanout, meta_name = _meta_location(key)
        with file_lock(self._root / "lock"), self._object_dirs(key) as fds:
            if fds is None or (st := lstat_regular(fds[-1], name)) is None:
                return False
            os.unlink(name, dir_fd=fds[-1])
            with (
                contextlib.suppress(FileNotFoundError, PathBlocked),
                dir_chain(self._root, [_META, fanout]) as meta_fds,
            ):
                os.unlink(meta_name, dir_fd=meta_fds[-1])
            _prune(fds, dirs)
            for fd in fds[1:]:
                os.fsync(fd)
            self._emit("delete", key, st.st_size)
            return True

    def _list(self, prefix: str) -> Iterator[ObjectInfo]:
        with dir_chain(self._root, [_OBJECTS]) as fds:
            yield from self._walk(fds[-1], "", prefix)

    def _walk(self, dir_fd: int, base: str, prefix: str) -> Iterator[ObjectInfo]:
        with os.scandir(dir_fd) as scan:
            entries = [
                (e.name, e.is_dir(follow_symlinks=False), e.is_file(follow_symlinks=False))
                for e in scan
            ]
        # Sorting directories as "name/" yields keys in exact code point order overall.
        entries.sort(key=lambda e: e[0] + "/" if e[1] else e[0])
        for name, is_dir, is_file in entries:
            if is_dir:
                below = f"{base}{name}/"
                if not (below.startswith(prefix) or prefix.startswith(below)):
                    continue
                try:
                    child = open_subdir(dir_fd, name)
                except (FileNotFoundError, PathBlocked):
                    continue  # removed (or replaced) while we were listing
                try:
                    yield from self._walk(child, below, prefix)
                finally:
                    os.close(child)
            elif is_file:
                key = base + name
                if not key.startswith(prefix) or not _valid(key):
                    continue
                st = lstat_regular(dir_fd, name)
                if st is not None:
                    yield self._info(key, dir_fd, st)

    def close(self) -> None:
        if self._events is not None:
            self._events.close()
            self._events = None

    def __repr__(self) -> str:
        return f"LocalStorage({self.id!r}, {str(self._root)!r})"


def _is_dir(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISDIR(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        return False


def _conflict(key: str, why: str) -> Conflict:
    return Conflict(
        f"cannot store {key!r}: {why}, and the local platform cannot hold both a key and "
        "keys below it",
        field="key",
    )


def _prune(fds: list[int], dirs: list[str]) -> None:
    """Remove directories left empty by a delete, deepest first (never ``objects/`` itself)."""
    # fds = [root, objects, dirs[0], ...]; dirs[i] lives in fds[i + 1].
    for i in range(len(dirs) - 1, -1, -1):
        try:
            os.rmdir(dirs[i], dir_fd=fds[i + 1])
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                return
            raise


def _valid(key: str) -> bool:
    try:
        validate_key(key)
    except InvalidKey:
        return False
    return True
