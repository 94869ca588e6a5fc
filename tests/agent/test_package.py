"""The release package: deterministic builds, and extraction that treats the archive as hostile."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import time
import tracemalloc
from pathlib import Path

import pytest
from agent_support import write_app
from package_support import (
    RAW_MANIFEST,
    extended,
    fat_headers,
    header_bomb,
    member,
    pax_records,
    write_gz,
)

from alien.client.package import (
    CODE_DIR,
    MANIFEST_FILE,
    MAX_EXTENDED_HEADER,
    PackageError,
    build_package,
    extract_package,
)
from alien.stack import dump_manifest, load_stack


def _build(app: Path, dest: Path) -> tuple[str, list[str]]:
    info = build_package(app, load_stack(app).manifest(), dest)
    with tarfile.open(dest) as tar:
        return info.digest, tar.getnames()


def test_same_code_gives_the_same_digest(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", "v1")
    (app / "api" / "helpers").mkdir()
    (app / "api" / "helpers" / "run.sh").write_text("#!/bin/sh\n")
    (app / "api" / "helpers" / "run.sh").chmod(0o700)
    first, names = _build(app, tmp_path / "one.tar.gz")

    # Same content, different mtimes, owner-only permissions, files created in another order.
    os.utime(app / "api" / "app.py", (1, 1))
    (app / "api" / "app.py").chmod(0o600)
    copy = tmp_path / "copy"
    (copy / "api" / "helpers").mkdir(parents=True)
    for rel in ("api/helpers/run.sh", "alien_stack.py", "api/app.py"):
        (copy / rel).write_bytes((app / rel).read_bytes())
    (copy / "api" / "helpers" / "run.sh").chmod(0o755)
    assert _build(app, tmp_path / "two.tar.gz")[0] == first
    assert _build(copy, tmp_path / "three.tar.gz")[0] == first

    assert names[0] == MANIFEST_FILE
    assert names[1:] == sorted(names[1:])
    with tarfile.open(tmp_path / "one.tar.gz") as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert {m.mtime for m in members.values()} == {0}
    assert {(m.uid, m.gid, m.uname, m.gname) for m in members.values()} == {(0, 0, "", "")}
    assert members[f"{CODE_DIR}/api/helpers/run.sh"].mode == 0o755
    assert members[f"{CODE_DIR}/api/app.py"].mode == 0o644

    (app / "api" / "app.py").write_text("VERSION = 'v2'\n")
    assert _build(app, tmp_path / "four.tar.gz")[0] != first


def test_caches_vcs_and_the_dev_area_are_left_out(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", "v1")
    for junk in ("__pycache__/app.cpython-311.pyc", ".git/HEAD", ".venv/bin/python", ".alien/x"):
        (app / "api" / junk).parent.mkdir(parents=True, exist_ok=True)
        (app / "api" / junk).write_text("junk")
    (app / "api" / "stale.pyc").write_text("junk")
    (app / "outside-code.txt").write_text("not a code dir")
    _, names = _build(app, tmp_path / "p.tar.gz")
    assert names == [MANIFEST_FILE, CODE_DIR, f"{CODE_DIR}/api", f"{CODE_DIR}/api/app.py"]


def test_links_inside_are_stored_as_files_and_links_outside_refused(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", "v1")
    (app / "shared.py").write_text("SHARED = 1\n")
    (app / "api" / "shared.py").symlink_to(app / "shared.py")
    _build(app, tmp_path / "p.tar.gz")
    with tarfile.open(tmp_path / "p.tar.gz") as tar:
        member = tar.getmember(f"{CODE_DIR}/api/shared.py")
        assert member.isreg()
        assert tar.extractfile(member).read() == b"SHARED = 1\n"  # type: ignore[union-attr]

    secret = tmp_path / "secret.txt"
    secret.write_text("not yours")
    (app / "api" / "leak.txt").symlink_to(secret)
    with pytest.raises(PackageError) as err:
        _build(app, tmp_path / "q.tar.gz")
    assert "leak.txt" in err.value.message and err.value.field == "path"


def test_round_trip(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", "v1")
    manifest = load_stack(app).manifest()
    build_package(app, manifest, tmp_path / "p.tar.gz")
    extract_package(tmp_path / "p.tar.gz", tmp_path / "out")
    assert (tmp_path / "out" / MANIFEST_FILE).read_bytes() == dump_manifest(manifest)
    assert (tmp_path / "out" / CODE_DIR / "api" / "app.py").read_bytes() == (
        app / "api" / "app.py"
    ).read_bytes()


def _archive(path: Path, entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for info, data in entries:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    path.write_bytes(gzip.compress(buf.getvalue()))
    return path


def _file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _special(name: str, kind: bytes, link: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info, None


MANIFEST = _file(MANIFEST_FILE, b"{}")


@pytest.mark.parametrize(
    ("entries", "complaint"),
    [
        ([MANIFEST, _file("code/../../escape.py")], "leaves the package"),
        ([MANIFEST, _file("/etc/cron.d/evil")], "unsafe name"),
        ([MANIFEST, _file("elsewhere/x.py")], "neither"),
        ([MANIFEST, _special("code/link", tarfile.SYMTYPE, "/etc/passwd")], "not a regular file"),
        ([MANIFEST, _special("code/hard", tarfile.LNKTYPE, "manifest.json")], "not a regular file"),
        ([MANIFEST, _special("code/dev", tarfile.CHRTYPE)], "not a regular file"),
        ([MANIFEST, _special("code/fifo", tarfile.FIFOTYPE)], "not a regular file"),
        ([MANIFEST, _file("code/a.py"), _file("code/a.py")], "twice"),
        ([MANIFEST, _file("code/a.py"), _file("code/a.py/b.py")], "clashes"),
        ([_file("code/a.py")], f"no {MANIFEST_FILE}"),
        ([MANIFEST, _file("code/big.bin", b"x" * 2048)], "more than 1024 bytes"),
    ],
)
def test_hostile_archives_are_refused(
    tmp_path: Path, entries: list[tuple[tarfile.TarInfo, bytes | None]], complaint: str
) -> None:
    archive = _archive(tmp_path / "evil.tar.gz", entries)
    with pytest.raises(PackageError) as err:
        extract_package(archive, tmp_path / "out", max_bytes=1024)
    assert complaint in err.value.message
    assert not (tmp_path / "escape.py").exists()
    assert not any(p.is_symlink() for p in (tmp_path / "out").rglob("*"))


def test_not_a_package_and_too_many_entries(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"PK\x03\x04 this is a zip, not a tar.gz")
    with pytest.raises(PackageError, match="not a readable release package"):
        extract_package(junk, tmp_path / "a")
    many = _archive(tmp_path / "many.tar.gz", [MANIFEST, *(_file(f"code/{i}") for i in range(5))])
    with pytest.raises(PackageError, match="more than 3 entries"):
        extract_package(many, tmp_path / "b", max_entries=3)


def test_a_deep_path_round_trips(tmp_path: Path) -> None:
    """Paths over 100 characters need a PAX header; build_package's must pass the header bound."""
    app = write_app(tmp_path / "app", "v1")
    deep = Path("api", *(f"directory-{i:02d}" for i in range(24)), "module.py")
    assert len(deep.as_posix()) > 300
    (app / deep).parent.mkdir(parents=True)
    (app / deep).write_text("DEEP = 1\n")
    build_package(app, load_stack(app).manifest(), tmp_path / "p.tar.gz")
    extract_package(tmp_path / "p.tar.gz", tmp_path / "out")
    assert (tmp_path / "out" / CODE_DIR / deep).read_text() == "DEEP = 1\n"


@pytest.mark.parametrize("kind", ["pax", "longname", "longlink"])
def test_an_extended_header_bomb_is_refused_before_it_is_read(tmp_path: Path, kind: str) -> None:
    """tarfile would read the declared 64 MiB into memory before the first member is seen."""
    bomb = header_bomb(tmp_path / "bomb.tar.gz", kind, 64 * 1024**2)
    tracemalloc.start()
    try:
        with pytest.raises(PackageError, match="extended tar header of 67108864 bytes"):
            extract_package(bomb, tmp_path / "out")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 48 * 1024**2  # zlib inflates a read chunk up to ~1000x; not the 64 MiB


def test_digit_only_pax_headers_cannot_stall_extraction(tmp_path: Path) -> None:
    """CVE-2024-6232: tarfile's hdrcharset regex is quadratic on a header of digits (< 3.11.10)."""
    at_bound = write_gz(
        tmp_path / "bound.tar.gz", RAW_MANIFEST, extended("pax", b"1" * MAX_EXTENDED_HEADER)
    )
    above = write_gz(
        tmp_path / "above.tar.gz", RAW_MANIFEST, extended("pax", b"1" * (MAX_EXTENDED_HEADER + 1))
    )
    started = time.monotonic()
    with pytest.raises(PackageError):  # unreadable on every version: no member follows
        extract_package(at_bound, tmp_path / "a")
    with pytest.raises(PackageError, match="extended tar header"):
        extract_package(above, tmp_path / "b")
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("size", ["-511", "-4096"])
def test_a_negative_size_is_refused(tmp_path: Path, size: str) -> None:
    """It would lower the running total, so what follows could pass max_bytes."""
    archive = write_gz(
        tmp_path / "neg.tar.gz",
        RAW_MANIFEST,
        extended("pax", pax_records({"size": size})),
        member("code/neg"),
        member("code/big", b"A" * 1500),
    )
    with pytest.raises(PackageError, match="'code/neg' has a negative size"):
        extract_package(archive, tmp_path / "out", max_bytes=1000)


@pytest.mark.parametrize(
    ("chunks", "complaint"),
    [
        ([extended("global", pax_records({"comment": "x"}))], "global PAX header"),
        ([member("code/s", kind=tarfile.GNUTYPE_SPARSE)], "sparse file"),
        (
            [
                extended(
                    "pax",
                    pax_records({"GNU.sparse.major": "1", "GNU.sparse.minor": "0"}),
                ),
                member("code/s", b"99999999\n"),
            ],
            "sparse file",
        ),
        (
            [extended("pax", pax_records({"GNU.sparse.map": "0,1"})), member("code/s", b"x")],
            "not a regular file",
        ),
        ([extended("pax", pax_records({"comment": "x"}))] * 400, "not a readable"),
    ],
    ids=["global", "gnu-sparse", "pax-sparse-1.0", "pax-sparse-0.1", "header-chain"],
)
def test_headers_build_package_never_writes_are_refused(
    tmp_path: Path, chunks: list[bytes], complaint: str
) -> None:
    archive = write_gz(tmp_path / "odd.tar.gz", RAW_MANIFEST, *chunks)
    with pytest.raises(PackageError, match=complaint):
        extract_package(archive, tmp_path / "out")


def test_members_are_not_kept_in_memory(tmp_path: Path) -> None:
    """tarfile keeps every member (and its PAX headers): 2000 x 7 KiB would be ~20 MiB here."""
    archive = fat_headers(tmp_path / "fat.tar.gz", 2000)
    tracemalloc.start()
    try:
        extract_package(archive, tmp_path / "out")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 12 * 1024**2
