"""The release package: deterministic builds, and extraction that treats the archive as hostile."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path

import pytest
from agent_support import write_app

from alien.client.package import (
    CODE_DIR,
    MANIFEST_FILE,
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
