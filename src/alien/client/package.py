"""The release package: what ``alien release`` uploads and what an agent unpacks.

Format (a contract, see docs/ARCHITECTURE.md "Release package"): a gzip-compressed tar holding

    manifest.json        the canonical manifest bytes (``alien.stack.dump_manifest``)
    code/<src>/...       every function's code directory, relative to the app directory

Only directories and regular files: a named pipe, socket or device in a code directory is
refused by name, never opened (opening a pipe blocks until a writer comes). Building is
deterministic: entries sorted, mtime 0, uid/gid 0 with empty owner names, modes normalised to
0644/0755, gzip header without name or time, so the same code and stack always give the same
bytes and therefore the same digest (uploading it again is free: the manager's blob store is
content-addressed). Caches, VCS data, virtualenvs and
alien's own area (``.alien/``) are left out. A symlink is stored as the file it points to when
that file is inside the app directory and refused otherwise.

Extracting treats the archive as hostile: only ``manifest.json`` and paths under ``code/``, no
absolute paths, no ``..``, no links, devices, FIFOs or sparse files, no entry twice, no negative
sizes, and bounded size and entry count (a gzip bomb stops at the limit instead of filling the
disk). tarfile reads a PAX or GNU long-name header whole, and scans a PAX header with a regex that
is quadratic on Python before 3.11.10 (CVE-2024-6232), before any member reaches those limits, so
such headers are refused above ``MAX_EXTENDED_HEADER`` bytes before tarfile reads them. Files are
created with ``O_EXCL | O_NOFOLLOW`` under a fresh directory, so nothing can be written outside it.
The agent runs all this in a child process with memory and CPU limits (``alien.agent.unpack``).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from alien.errors import ValidationError
from alien.stack.manifest import dump_manifest
from alien.stack.spec import Manifest

MANIFEST_FILE = "manifest.json"
CODE_DIR = "code"
SKIP_NAMES = frozenset(
    {".alien", "__pycache__", ".git", ".hg", ".svn", ".venv", ".mypy_cache", ".pytest_cache"}
)
SKIP_SUFFIXES = (".pyc", ".pyo")
MAX_MANIFEST_BYTES = 1024 * 1024
DEFAULT_MAX_BYTES = 4 * 1024**3
DEFAULT_MAX_ENTRIES = 100_000
# Room for a path of PATH_MAX (4096) bytes, the longest header build_package writes, while
# CVE-2024-6232's regex stays under 0.1 s on a header this size.
MAX_EXTENDED_HEADER = 8 * 1024
_GZIP_LEVEL = 6


class PackageError(ValidationError):
    """A package that cannot be built from the app directory, or must not be unpacked."""

    code = "INVALID_PACKAGE"


@dataclass(frozen=True)
class PackageInfo:
    digest: str
    size: int
    files: int


# --- building ----------------------------------------------------------------------------------


def _skipped(name: str) -> bool:
    return name in SKIP_NAMES or name.endswith(SKIP_SUFFIXES)


def _kind(mode: int) -> str:
    """What a non-regular, non-directory file is, in the words a user knows it by."""
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"


def _not_packable(rel: str, what: str) -> PackageError:
    return PackageError(
        f"{rel} is {what}: a package holds only directories and regular files", field="path"
    )


def _walk(app_dir: Path, src: str) -> Iterator[tuple[str, Path, bool]]:
    """(path relative to the app dir, path on disk, is a directory) under one code directory.

    Every entry is classified with ``lstat`` and anything but a directory or a regular file is
    refused here, before ``write_package`` opens it: opening a named pipe blocks until a writer
    comes, and a socket cannot be opened at all.
    """
    root = app_dir / src
    yield PurePosixPath(src).as_posix(), root, True
    for current, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not _skipped(d))
        here = Path(current)
        for name in [*dirs, *sorted(f for f in files if not _skipped(f))]:
            path = here / name
            rel = path.relative_to(app_dir).as_posix()
            try:
                mode = path.lstat().st_mode
            except OSError as exc:
                raise PackageError(f"cannot read {rel}: {exc.strerror}", field="path") from None
            if stat.S_ISLNK(mode):
                if name in dirs:
                    dirs.remove(name)
                yield rel, _link_target(app_dir, rel, path), False
            elif stat.S_ISDIR(mode):
                yield rel, path, True
            elif stat.S_ISREG(mode):
                yield rel, path, False
            else:
                raise _not_packable(rel, _kind(mode))


def _link_target(app_dir: Path, rel: str, path: Path) -> Path:
    """The regular file inside ``app_dir`` that the symlink ``path`` stands for, else refused."""
    target = path.resolve()
    try:
        mode = target.stat().st_mode
    except OSError:
        raise PackageError(
            f"{rel} is a symlink to {target}, which does not exist", field="path"
        ) from None
    if stat.S_ISDIR(mode) or not target.is_relative_to(app_dir.resolve()):
        raise PackageError(
            f"{rel} is a symlink to {'a directory' if stat.S_ISDIR(mode) else target}; "
            "only links to files inside the app directory can be packaged",
            field="path",
        )
    if not stat.S_ISREG(mode):
        raise _not_packable(rel, f"a symlink to {_kind(mode)}")
    return target


def package_entries(app_dir: Path, manifest: Manifest) -> list[tuple[str, Path, bool]]:
    """Every code entry, sorted, each once (code dirs may nest, like ``.`` and ``api``)."""
    app = app_dir.resolve()
    entries: dict[str, tuple[Path, bool]] = {}
    for src in sorted({fn.config.code.src for fn in manifest.functions()}):
        for rel, path, is_dir in _walk(app, src):
            entries.setdefault(rel, (path, is_dir))
    return [(rel, path, is_dir) for rel, (path, is_dir) in sorted(entries.items())]


def _info(name: str, *, is_dir: bool, size: int = 0, executable: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if is_dir else tarfile.REGTYPE
    info.mode = 0o755 if is_dir or executable else 0o644
    info.size = 0 if is_dir else size
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _arcname(rel: str) -> str:
    return CODE_DIR if rel == "." else f"{CODE_DIR}/{rel.removeprefix('./')}"


def _open_regular(rel: str, path: Path) -> tuple[BinaryIO, os.stat_result]:
    """``path`` opened for reading and its ``fstat``, refused unless it is still a regular file.

    ``_walk`` already checked with ``lstat``; ``O_NONBLOCK`` and the check of the open descriptor
    cover a file swapped for a named pipe in between, which would otherwise block the open.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise PackageError(f"cannot read {rel}: {exc.strerror}", field="path") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise _not_packable(rel, _kind(st.st_mode))
    return os.fdopen(fd, "rb"), st


def write_package(app_dir: Path, manifest: Manifest, out: BinaryIO) -> int:
    """Write the package of ``manifest``'s code in ``app_dir`` to ``out``; return the file count."""
    files = 0
    with (
        gzip.GzipFile(
            filename="", mode="wb", fileobj=out, mtime=0, compresslevel=_GZIP_LEVEL
        ) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        manifest_bytes = dump_manifest(manifest)
        tar.addfile(
            _info(MANIFEST_FILE, is_dir=False, size=len(manifest_bytes)), io.BytesIO(manifest_bytes)
        )
        tar.addfile(_info(CODE_DIR, is_dir=True))
        for rel, path, is_dir in package_entries(app_dir, manifest):
            name = _arcname(rel)
            if name == CODE_DIR:
                continue
            if is_dir:
                tar.addfile(_info(name, is_dir=True))
                continue
            fh, st = _open_regular(rel, path)
            executable = bool(st.st_mode & stat.S_IXUSR)
            with fh:
                tar.addfile(_info(name, is_dir=False, size=st.st_size, executable=executable), fh)
            files += 1
    return files


def build_package(app_dir: Path, manifest: Manifest, dest: Path) -> PackageInfo:
    """Write the package to ``dest`` and return its digest and size."""
    with dest.open("wb") as out:
        files = write_package(app_dir, manifest, out)
    return PackageInfo(digest=file_digest(dest), size=dest.stat().st_size, files=files)


def file_digest(path: Path) -> str:
    with path.open("rb") as fh:
        return "sha256:" + hashlib.file_digest(fh, "sha256").hexdigest()


# --- extracting --------------------------------------------------------------------------------


def _safe_parts(name: str) -> tuple[str, ...]:
    """The path components of an entry name, or ``PackageError`` if it could escape."""
    if not name or name.startswith("/") or "\\" in name or any(ord(c) < 32 for c in name):
        raise PackageError(f"package entry {name[:200]!r} has an unsafe name", field="package")
    parts = tuple(p for p in PurePosixPath(name).parts if p != ".")
    if not parts or ".." in parts:
        raise PackageError(f"package entry {name[:200]!r} leaves the package", field="package")
    if parts != (MANIFEST_FILE,) and parts[0] != CODE_DIR:
        raise PackageError(
            f"package entry {name[:200]!r} is neither {MANIFEST_FILE} nor under {CODE_DIR}/",
            field="package",
        )
    return parts


def _mkdirs(target: Path, parts: tuple[str, ...]) -> Path:
    """Create ``parts`` as directories under ``target``, refusing anything that is not one."""
    current = target
    for part in parts:
        current = current / part
        try:
            current.mkdir(mode=0o755)
        except FileExistsError:
            if current.is_symlink() or not current.is_dir():
                raise PackageError(
                    f"package entry {'/'.join(parts)!r} clashes with a file", field="package"
                ) from None
    return current


def _write_file(path: Path, source: BinaryIO, mode: int) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o755 if mode & stat.S_IXUSR else 0o644)
    except FileExistsError:
        raise PackageError(f"package has {path.name!r} twice", field="package") from None
    with os.fdopen(fd, "wb") as out:
        while chunk := source.read(256 * 1024):
            out.write(chunk)


class _BoundedTarInfo(tarfile.TarInfo):
    """A ``TarInfo`` that refuses extended headers tarfile would read whole before we see a member.

    ``TarInfo._proc_member`` hands each header type to the method overridden here; checking the
    declared size first keeps a header bomb from being buffered in memory. Global PAX headers
    and sparse files are refused outright: build_package writes neither, a global header's
    entries accumulate for every later member, and sparse maps are read in a loop the archive
    controls.
    """

    def _check_extended(self) -> None:
        if not 0 <= self.size <= MAX_EXTENDED_HEADER:
            raise PackageError(
                f"package has an extended tar header of {self.size} bytes "
                f"(at most {MAX_EXTENDED_HEADER})",
                field="package",
            )

    def _proc_pax(self, archive: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type == tarfile.XGLTYPE:
            raise PackageError("package has a global PAX header", field="package")
        self._check_extended()
        return super()._proc_pax(archive)

    def _proc_gnulong(self, archive: tarfile.TarFile) -> tarfile.TarInfo:
        self._check_extended()
        return super()._proc_gnulong(archive)

    def _proc_sparse(self, archive: tarfile.TarFile) -> tarfile.TarInfo:
        raise PackageError("package has a sparse file", field="package")

    def _proc_gnusparse_10(
        self, member: tarfile.TarInfo, pax_headers: dict[str, str], archive: tarfile.TarFile
    ) -> None:
        raise PackageError("package has a sparse file", field="package")


def extract_package(
    archive: Path,
    target: Path,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_entries: int = DEFAULT_MAX_ENTRIES,
) -> None:
    """Unpack ``archive`` into ``target`` (which must not exist yet); see the module docstring.

    On failure ``target`` may hold a partial tree: the caller extracts into a scratch directory
    and removes it on error.
    """
    target.mkdir(mode=0o700)
    total = entries = 0
    seen_manifest = False
    try:
        with tarfile.open(archive, mode="r|gz", tarinfo=_BoundedTarInfo) as tar:
            for member in tar:
                tar.members.clear()  # kept for random access a stream never does: only memory
                entries += 1
                if entries > max_entries:
                    raise PackageError(
                        f"package has more than {max_entries} entries", field="package"
                    )
                parts = _safe_parts(member.name)
                if member.size < 0:  # would lower the running total below and slip past max_bytes
                    raise PackageError(
                        f"package entry {member.name[:200]!r} has a negative size", field="package"
                    )
                if member.isdir():
                    _mkdirs(target, parts)
                    continue
                if not member.isreg() or member.issparse():
                    raise PackageError(
                        f"package entry {member.name[:200]!r} is not a regular file or directory",
                        field="package",
                    )
                total += member.size
                if total > max_bytes:
                    raise PackageError(
                        f"package unpacks to more than {max_bytes} bytes", field="package"
                    )
                if parts == (MANIFEST_FILE,):
                    if member.size > MAX_MANIFEST_BYTES:
                        raise PackageError("the package's manifest is too large", field="package")
                    seen_manifest = True
                parent = _mkdirs(target, parts[:-1])
                source = tar.extractfile(member)
                assert source is not None  # regular files always have data
                _write_file(parent / parts[-1], source, member.mode)
    # RecursionError: tarfile follows a chain of extended headers by recursion.
    except (tarfile.TarError, EOFError, OSError, gzip.BadGzipFile, RecursionError) as exc:
        raise PackageError(f"not a readable release package: {exc}", field="package") from None
    if not seen_manifest:
        raise PackageError(f"the package has no {MANIFEST_FILE}", field="package")
